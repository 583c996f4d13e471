//! The planner's own tests, on `&str` texts (no interpreter).

use super::check::*;
use super::*;
use crate::error::{quote, Error};
use std::ops::Range;


type V<'a> = Option<&'a str>;

/// Entries built the way the binding builds them: each updates dict once,
/// each named live row's current values in `known`: the given status, and
/// [`OLD`] for every other column (so that a None is a change).
struct Builder<'a> {
    target: Target,
    known: Vec<(&'a str, V<'a>)>,
    list: List<&'a str>,
}

const OLD: &str = "old";

/// A row of current values: `status`, and [`OLD`] elsewhere.
fn row(target: Target, status: V<'static>) -> Vec<V<'static>> {
    let columns = target.known_columns();
    columns.iter().map(|&c| if c == Column::Status { status } else { Some(OLD) }).collect()
}

fn items<'a>(pairs: &[(&'a str, V<'a>)]) -> Vec<Item<&'a str>> {
    pairs.iter().map(|(k, v)| Item::new(Key::Str(*k), v.map_or(Scalar::Null, Scalar::Str))).collect()
}

impl<'a> Builder<'a> {
    /// Volumes, with the status of each live row.
    fn new(known: &[(&'a str, V<'a>)]) -> Self {
        Builder { target: Target::Volume, known: known.to_vec(), list: List::default() }
    }

    /// Groups, with the status of each live row.
    fn group(known: &[(&'a str, V<'a>)]) -> Self {
        Builder { target: Target::Group, ..Builder::new(known) }
    }

    fn id(&mut self, id: &'a str) -> Id<&'a str> {
        let width = self.target.known_columns().len();
        let current = self.known.iter().find(|(k, _)| *k == id).map(|&(_, status)| {
            for (&c, &value) in self.target.known_columns().iter().zip(&row(self.target, None)) {
                self.list.known.push(if c == Column::Status { status } else { value });
            }
            (self.list.known.len() / width - 1) as u32
        });
        Id::Str { id, current }
    }

    /// An entry with its own dict.
    fn add(mut self, id: &'a str, pairs: &[(&'a str, V<'a>)]) -> Self {
        let updates = UpdatesRef::Dict(self.list.dicts.push(items(pairs)).unwrap());
        let id = self.id(id);
        self.list.entries.push(Entry::dict(id, updates));
        self
    }

    /// An entry sharing dict number `dict`.
    fn share(mut self, id: &'a str, dict: u32) -> Self {
        let id = self.id(id);
        self.list.entries.push(Entry::dict(id, UpdatesRef::Dict(dict)));
        self
    }

    fn raw(mut self, entry: Entry<&'a str>) -> Self {
        self.list.entries.push(entry);
        self
    }

    fn build(self) -> Entries<&'a str> {
        Entries::List(self.list)
    }

    fn volumes(self) -> Input<&'a str> {
        Input { service: Service::Null, volumes: self.build(), groups: Entries::empty() }
    }

    fn groups(self) -> Input<&'a str> {
        Input { service: Service::Null, volumes: Entries::empty(), groups: self.build() }
    }
}

fn pairs<S>(pairs: Vec<(Key<S>, Scalar<S>)>) -> Vec<Item<S>> {
    pairs.into_iter().map(|(k, v)| Item::new(k, v)).collect()
}

fn bad_shape(missing_id: bool, missing_updates: bool, unexpected: Vec<Key<&str>>) -> Entry<&str> {
    Entry::bad_shape(BadShape { missing_id, missing_updates, unexpected })
}

fn limits(max_params: usize, min_group: usize) -> Limits {
    Limits { max_params, min_group }
}

type SetView<'a> = (Vec<(Column, V<'a>)>, Vec<&'a str>);
type RowView<'a> = (Vec<Column>, Vec<&'a str>, Vec<Vec<V<'a>>>);

fn sets<'a>(plan: &KindPlan<&'a str>) -> Vec<SetView<'a>> {
    plan.sets.iter().map(|s| (s.values.clone(), plan.ids(s.members.clone()).collect())).collect()
}

fn rows<'a>(plan: &KindPlan<&'a str>) -> Vec<RowView<'a>> {
    plan.rows
        .iter()
        .map(|r| {
            let mut values = vec![Vec::new(); r.columns.len()];
            for (_, row) in plan.rows(r) {
                for (column, value) in values.iter_mut().zip(row) {
                    column.push(value);
                }
            }
            (r.columns.clone(), plan.ids(r.members.clone()).collect(), values)
        })
        .collect()
}

fn refused(input: Input<&str>) -> Vec<String> {
    match plan(input, limits(100, 2)) {
        Err(Error::DriverAnswer { message, details }) => {
            let n = message.split(": ").nth(1).unwrap().split(' ').next().unwrap();
            assert_eq!(message, format!("the driver's answer was refused: {n} problem(s); nothing was written"));
            details
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn one_problem(input: Input<&str>) -> String {
    let details = refused(input);
    assert_eq!(details.len(), 1, "{details:?}");
    details[0].clone()
}

const KNOWN: [(&str, V); 4] =
    [("v1", Some("available")), ("v2", Some("in-use")), ("v3", None), ("v4", Some("available"))];
const ENABLED: [(&str, V); 1] = [("replication_status", Some("enabled"))];
const SIX: [(&str, V); 6] = [
    ("replication_status", Some("enabled")),
    ("replication_extended_status", Some("e")),
    ("replication_driver_data", Some("d")),
    ("provider_location", Some("c")),
    ("provider_id", Some("b")),
    ("provider_auth", Some("a")),
];

#[test]
fn limits_are_checked() {
    assert_eq!(check_limits(8, 1), Ok(limits(8, 1)));
    assert_eq!(check_limits(7, 1), Err(Error::ArgumentValue("max_params must be at least 8, got 7".into())));
    assert_eq!(check_limits(8, 0), Err(Error::ArgumentValue("min_group must be at least 1, got 0".into())));
    assert_eq!(check_limits(i64::MAX, i64::MAX).unwrap().max_params, i64::MAX as usize);
}

#[test]
fn a_shared_dict_becomes_one_set() {
    let input = Builder::new(&KNOWN).add("v1", &ENABLED).share("v2", 0).share("v3", 0).share("v4", 0).volumes();
    let p = plan(input, limits(8, 2)).unwrap();
    assert_eq!(p.volumes.count, 4);
    assert_eq!(rows(&p.volumes), vec![]);
    let values = vec![(Column::ReplicationStatus, Some("enabled"))];
    assert_eq!(sets(&p.volumes), vec![(values, vec!["v1", "v2", "v3", "v4"])]);
}

#[test]
fn equal_dicts_group_too_and_values_are_sorted_by_column() {
    let many = [("replication_status", Some("enabled")), ("provider_id", Some("p")), ("provider_auth", None)];
    let input = Builder::new(&KNOWN).add("v1", &many).add("v2", &many).add("v3", &many).volumes();
    let p = plan(input, limits(100, 2)).unwrap();
    let values = vec![
        (Column::ProviderAuth, None),
        (Column::ProviderId, Some("p")),
        (Column::ReplicationStatus, Some("enabled")),
    ];
    assert_eq!(sets(&p.volumes), vec![(values.clone(), vec!["v1", "v2", "v3"])]);
    // In another order, as columns the binding recognised: the same values.
    let mut b = Builder::new(&KNOWN).add("v1", &many);
    let reversed = many.iter().rev().map(|(k, v)| Item::Column(Column::named(k).unwrap(), *v));
    let d = b.list.dicts.push(reversed).unwrap();
    let p = plan(b.share("v2", d).share("v3", 0).volumes(), limits(100, 2)).unwrap();
    assert_eq!(sets(&p.volumes), vec![(values, vec!["v1", "v2", "v3"])]);
}

#[test]
fn vouched_ids_give_the_same_plan() {
    let input = |distinct| {
        let mut b = Builder::new(&KNOWN).add("v1", &ENABLED).share("v2", 0).add("v3", &ENABLED);
        b.list.ids_distinct = distinct;
        b.volumes()
    };
    let (vouched, searched) = (plan(input(true), limits(8, 2)).unwrap(), plan(input(false), limits(8, 2)).unwrap());
    assert_eq!(sets(&vouched.volumes), sets(&searched.volumes));
    assert_eq!(sets(&vouched.volumes)[0].1, vec!["v1", "v2", "v3"]);
}

#[test]
fn set_chunks_hold_max_params_minus_values_ids() {
    let input = Builder::new(&KNOWN).add("v1", &SIX).share("v2", 0).share("v3", 0).share("v4", 0).volumes();
    // 8 parameters, 6 values: 2 ids per chunk.
    let p = plan(input, limits(8, 2)).unwrap();
    let ids: Vec<Vec<&str>> = sets(&p.volumes).into_iter().map(|(_, ids)| ids).collect();
    assert_eq!(ids, vec![vec!["v1", "v2"], vec!["v3", "v4"]]);
    let columns: Vec<Column> = p.volumes.sets[0].values.iter().map(|(c, _)| *c).collect();
    assert!(columns.windows(2).all(|w| w[0] < w[1]), "{columns:?}");
}

#[test]
fn a_chunk_holds_at_least_one_id() {
    let mut all = SIX.to_vec();
    all.insert(2, ("status", Some("error")));
    let input = Builder::new(&KNOWN).add("v1", &all).share("v4", 0).volumes();
    // Seven values and previous_status: 8 - 8 = 0, so one id per chunk.
    let p = plan(input, limits(8, 1)).unwrap();
    let s = sets(&p.volumes);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].0.len(), 8);
    assert_eq!(s[0].0[0], (Column::PreviousStatus, Some("available")));
    assert_eq!(s[1].1, vec!["v4"]);
    // Rows: 8 columns + the id = 9 parameters > 8: still one row per chunk.
    let input = Builder::new(&KNOWN).add("v1", &all).add("v2", &all).volumes();
    let r = rows(&plan(input, limits(8, 3)).unwrap().volumes);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].1, vec!["v2"]);
    assert_eq!(r[1].2[0], vec![Some("in-use")]);
}

#[test]
fn small_groups_become_row_chunks_by_columns() {
    let input = Builder::new(&KNOWN)
        .add("v1", &[("provider_id", Some("a")), ("replication_status", Some("enabled"))])
        .add("v2", &[("replication_status", Some("error"))])
        .add("v3", &[("replication_status", Some("enabled")), ("provider_id", Some("c"))])
        .add("v4", &[("provider_id", Some("d")), ("replication_status", Some("disabled"))])
        .volumes();
    let p = plan(input, limits(8, 2)).unwrap();
    assert_eq!(sets(&p.volumes), vec![]);
    let both = vec![Column::ProviderId, Column::ReplicationStatus];
    assert_eq!(
        rows(&p.volumes),
        vec![
            // 8 // (2 + 1) = 2 rows per chunk, in input order.
            (
                both.clone(),
                vec!["v1", "v3"],
                vec![vec![Some("a"), Some("c")], vec![Some("enabled"), Some("enabled")]],
            ),
            (both, vec!["v4"], vec![vec![Some("d")], vec![Some("disabled")]]),
            (vec![Column::ReplicationStatus], vec!["v2"], vec![vec![Some("error")]]),
        ]
    );
}

#[test]
fn sets_and_rows_in_order_of_first_appearance() {
    let on = ENABLED;
    let off = [("replication_status", Some("disabled"))];
    let input = Builder::new(&KNOWN).add("v1", &off).add("v2", &on).add("v3", &off).add("v4", &on).volumes();
    let p = plan(input, limits(8, 2)).unwrap();
    let s: Vec<(V, Vec<&str>)> = sets(&p.volumes).into_iter().map(|(v, ids)| (v[0].1, ids)).collect();
    assert_eq!(s, vec![(Some("disabled"), vec!["v1", "v3"]), (Some("enabled"), vec!["v2", "v4"])]);
    let input = Builder::new(&KNOWN).add("v1", &off).add("v2", &on).share("v3", 1).volumes();
    let p = plan(input, limits(8, 2)).unwrap();
    assert_eq!(sets(&p.volumes).into_iter().map(|(_, ids)| ids).collect::<Vec<_>>(), vec![vec!["v2", "v3"]]);
    assert_eq!(rows(&p.volumes).into_iter().map(|(_, ids, _)| ids).collect::<Vec<_>>(), vec![vec!["v1"]]);
}

#[test]
fn previous_status_keeps_the_old_status() {
    let available = [("status", Some("available"))];
    // v1 is available already; v2 is in-use; v3 has no status; v4 is available.
    let input = Builder::new(&KNOWN).add("v1", &available).share("v2", 0).share("v3", 0).share("v4", 0).volumes();
    let p = plan(input, limits(100, 2)).unwrap();
    assert_eq!((p.volumes.count, p.volumes.unchanged), (2, 2));
    assert_eq!(sets(&p.volumes), vec![]);
    assert_eq!(
        rows(&p.volumes),
        vec![(
            vec![Column::PreviousStatus, Column::Status],
            vec!["v2", "v3"],
            vec![vec![Some("in-use"), None], vec![Some("available"), Some("available")]],
        )]
    );
    // Equal old statuses group, whichever object holds them.
    let known = [("a", Some("in-use")), ("b", Some("in-use")), ("c", None), ("d", None)];
    let input = Builder::new(&known).add("a", &available).share("b", 0).share("c", 0).share("d", 0).volumes();
    let s = sets(&plan(input, limits(100, 2)).unwrap().volumes);
    assert_eq!(s.iter().map(|(v, ids)| (v[0].1, ids.clone())).collect::<Vec<_>>(), vec![
        (Some("in-use"), vec!["a", "b"]),
        (None, vec!["c", "d"]),
    ]);
    // Groups have no previous_status.
    let input = Builder::group(&[("g1", Some("available"))]).add("g1", &[("status", Some("error"))]).groups();
    let p = plan(input, limits(100, 1)).unwrap();
    assert_eq!(sets(&p.groups), vec![(vec![(Column::Status, Some("error"))], vec!["g1"])]);
}

#[test]
fn values_equal_to_the_rows_are_not_written() {
    let same = [("provider_id", Some(OLD)), ("replication_status", Some("enabled"))];
    let input = Builder::new(&KNOWN)
        .add("v1", &[("provider_id", Some(OLD)), ("status", Some("available"))])
        .add("v2", &same)
        .share("v3", 1)
        .add("v4", &[("provider_id", Some(OLD)), ("replication_extended_status", Some(OLD))])
        .volumes();
    let p = plan(input, limits(100, 2)).unwrap();
    // v1 and v4 change nothing; v2 and v3 only their replication status,
    // as one set (the equal provider_id is left out of it).
    assert_eq!((p.volumes.count, p.volumes.unchanged), (2, 2));
    assert_eq!(sets(&p.volumes), vec![(vec![(Column::ReplicationStatus, Some("enabled"))], vec!["v2", "v3"])]);
    assert_eq!(rows(&p.volumes), vec![]);
    // Partly equal entries group with others that write the same values.
    let input = Builder::new(&KNOWN)
        .add("v1", &same)
        .add("v2", &[("replication_status", Some("enabled"))])
        .add("v3", &[("provider_id", Some("new")), ("replication_status", Some("enabled"))])
        .volumes();
    let p = plan(input, limits(100, 2)).unwrap();
    assert_eq!(sets(&p.volumes), vec![(vec![(Column::ReplicationStatus, Some("enabled"))], vec!["v1", "v2"])]);
    let both = vec![Column::ProviderId, Column::ReplicationStatus];
    assert_eq!(rows(&p.volumes), vec![(both, vec!["v3"], vec![vec![Some("new")], vec![Some("enabled")]])]);
    // An equal status writes no previous_status; None equals None.
    let input = Builder::new(&KNOWN).add("v2", &[("status", Some("in-use")), ("provider_id", None)]).volumes();
    let p = plan(input, limits(100, 1)).unwrap();
    assert_eq!(sets(&p.volumes), vec![(vec![(Column::ProviderId, None)], vec!["v2"])]);
    let input = Builder::group(&[("g1", None)]).add("g1", &[("status", None)]).groups();
    // An invalid value is refused even when it equals the row's.
    assert_eq!(one_problem(input), "group_updates[0]: invalid status None");
    let input = Builder::group(&[("g1", Some("error"))]).add("g1", &[("status", Some("error"))]).groups();
    let p = plan(input, limits(100, 1)).unwrap();
    assert_eq!((p.groups.count, p.groups.unchanged, p.groups.sets.len()), (0, 1, 0));
}

#[test]
fn empty_updates_are_checked_and_count_as_unchanged() {
    let input = Builder::new(&KNOWN).add("v1", &[]).add("v2", &[("provider_id", Some("x"))]).volumes();
    let p = plan(input, limits(100, 2)).unwrap();
    assert_eq!((p.volumes.count, p.volumes.unchanged), (1, 1));
    assert_eq!(rows(&p.volumes)[0].1, vec!["v2"]);
    let input = Builder::new(&KNOWN).add("nope", &[]).volumes();
    assert_eq!(one_problem(input), "volume_updates[0]: volume 'nope' is not a live volume of this backend");
}

#[test]
fn service_rules() {
    let input = |service| Input { service, volumes: Entries::empty(), groups: Entries::empty() };
    assert_eq!(one_problem(input(Service::NotADict("list"))), "service_update: expected a dict or None, got list");
    let good = Service::Dict(items(&[("active_backend_id", None), ("replication_status", Some("failed-over"))]));
    let p = plan(input(good), limits(8, 1)).unwrap();
    assert_eq!(p.service, vec![(Column::ActiveBackendId, None), (Column::ReplicationStatus, Some("failed-over"))]);
    let long = "x".repeat(256);
    let bad = Service::Dict(pairs(vec![
        (Key::Other("int"), Scalar::Null),
        (Key::Str("status"), Scalar::Null),
        (Key::Str("replication_status"), Scalar::Null),
        (Key::Str("active_backend_id"), Scalar::Other("int")),
        (Key::Str("active_backend_id"), Scalar::Str(long.as_str())),
        (Key::Column(Column::ReplicationStatus), Scalar::Str("updating")),
        (Key::Str("active_backend_id"), Scalar::NotUtf8),
        (Key::NotUtf8(Box::new([0x61, 0xd800, 0x1b])), Scalar::Null),
    ]));
    let allowed = "allowed: active_backend_id, replication_status";
    assert_eq!(
        refused(input(bad)),
        vec![
            "service_update: keys must be strings, got int".to_string(),
            format!("service_update: key 'status' may not be updated; {allowed}"),
            "service_update: invalid replication_status None".into(),
            "service_update: 'active_backend_id' must be a string or None, got int".into(),
            "service_update: 'active_backend_id' is 256 characters; the column holds 255".into(),
            "service_update: invalid replication_status 'updating'".into(),
            "service_update: 'active_backend_id' is not valid UTF-8".into(),
            format!("service_update: key 'a\\ud800\\x1b' may not be updated; {allowed}"),
        ]
    );
}

#[test]
fn list_and_entry_shapes() {
    let unexpected = vec![Key::Str("volume_id"), Key::Other("int"), Key::NotUtf8(Box::new([0xdc80]))];
    let input = Input {
        service: Service::Null,
        volumes: Entries::NotAList("dict"),
        groups: Builder::new(&[])
            .raw(Entry::not_a_dict("str"))
            .raw(bad_shape(true, true, vec![]))
            .raw(bad_shape(false, true, unexpected))
            .build(),
    };
    assert_eq!(
        refused(input),
        vec![
            "volume_updates: expected a list, got dict",
            "group_updates[0]: expected a dict with 'group_id' and 'updates', got str",
            "group_updates[1]: missing 'group_id'",
            "group_updates[1]: missing 'updates'",
            "group_updates[2]: missing 'updates'",
            "group_updates[2]: unexpected key 'volume_id'",
            "group_updates[2]: unexpected key of type int",
            "group_updates[2]: unexpected key '\\udc80'",
        ]
    );
}

#[test]
fn id_and_updates_types() {
    let input = Builder::new(&KNOWN)
        .raw(Entry::dict(Id::Other("int"), UpdatesRef::Other("list")))
        .raw(Entry::dict(Id::NotUtf8, UpdatesRef::Other("NoneType")))
        .volumes();
    assert_eq!(
        refused(input),
        vec![
            "volume_updates[0]: volume_id must be a string, got int",
            "volume_updates[0]: updates must be a dict, got list",
            "volume_updates[1]: volume_id is not valid UTF-8",
            "volume_updates[1]: updates must be a dict, got NoneType",
        ]
    );
}

#[test]
fn unknown_and_duplicate_ids() {
    let input = Builder::new(&KNOWN)
        .add("v1", &ENABLED)
        .share("gone\n", 0)
        .share("v1", 0)
        .share("v2", 0)
        .share("v1", 0)
        .share("gone\n", 0)
        .volumes();
    assert_eq!(
        refused(input),
        vec![
            "volume_updates[1]: volume 'gone\\x0a' is not a live volume of this backend",
            "volume_updates[2]: volume 'v1' appears more than once (first at [0])",
            "volume_updates[4]: volume 'v1' appears more than once (first at [0])",
            "volume_updates[5]: volume 'gone\\x0a' is not a live volume of this backend",
            "volume_updates[5]: volume 'gone\\x0a' appears more than once (first at [1])",
        ]
    );
}

/// Texts whose hashes all collide: duplicates must still be told apart.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Colliding<'a>(&'a str);

impl Text for Colliding<'_> {
    fn as_str(&self) -> &str {
        self.0
    }

    fn text_hash(&self) -> u64 {
        42
    }
}

#[test]
fn hash_collisions_are_told_apart() {
    let c = Colliding;
    let mut list = List::default();
    for status in ["error", "in-use"] {
        list.known.extend(row(Target::Volume, Some(status)).into_iter().map(|v| v.map(c)));
    }
    let on = list.dicts.push(pairs(vec![(Key::Str(c("replication_status")), Scalar::Str(c("enabled")))])).unwrap();
    let off = list.dicts.push(pairs(vec![(Key::Str(c("replication_status")), Scalar::Str(c("disabled")))])).unwrap();
    let status = list.dicts.push(pairs(vec![(Key::Str(c("status")), Scalar::Str(c("available")))])).unwrap();
    let entry =
        |id, dict, current| Entry::dict(Id::Str { id: c(id), current: Some(current) }, UpdatesRef::Dict(dict));
    for (id, dict, current) in [("a", on, 0), ("b", off, 0), ("c", on, 0), ("d", off, 0), ("e", status, 0)] {
        list.entries.push(entry(id, dict, current));
    }
    list.entries.push(entry("f", status, 1));
    let input = Input { service: Service::Null, volumes: Entries::List(list.clone()), groups: Entries::empty() };
    let p = plan(input, limits(100, 2)).unwrap();
    let ids_of = |members: &Range<usize>| p.volumes.ids(members.clone()).map(|t| t.0).collect::<Vec<_>>();
    let ids: Vec<Vec<&str>> = p.volumes.sets.iter().map(|s| ids_of(&s.members)).collect();
    assert_eq!(ids, vec![vec!["a", "c"], vec!["b", "d"]]);
    let ids: Vec<Vec<&str>> = p.volumes.rows.iter().map(|r| ids_of(&r.members)).collect();
    // Their previous statuses differ: two rows, not a set.
    assert_eq!(ids, vec![vec!["e", "f"]]);

    list.entries.push(entry("b", on, 0));
    let input = Input { service: Service::Null, volumes: Entries::List(list), groups: Entries::empty() };
    let Err(Error::DriverAnswer { details, .. }) = plan(input, limits(100, 2)) else { panic!() };
    assert_eq!(details, vec!["volume_updates[6]: volume 'b' appears more than once (first at [1])"]);
}

#[test]
fn key_and_value_rules_in_order() {
    let long255 = "é".repeat(255);
    let long256 = "é".repeat(256);
    let long257 = "x".repeat(257);
    let dict = pairs(vec![
        (Key::Other("bytes"), Scalar::Null),
        (Key::Str("previous_status"), Scalar::Str("available")),
        (Key::Column(Column::PreviousStatus), Scalar::Str("available")),
        (Key::Str("provider_id"), Scalar::Other("int")),
        (Key::Str("provider_id"), Scalar::NotUtf8),
        (Key::Str("replication_driver_data"), Scalar::Str(&long256)),
        (Key::Str("replication_extended_status"), Scalar::Str(&long255)),
        (Key::Str("provider_location"), Scalar::Str(&long256)),
        (Key::Str("provider_auth"), Scalar::Str(&long257)),
        (Key::Str("replication_status"), Scalar::Null),
        (Key::Str("replication_status"), Scalar::Str("updating")),
        (Key::Str("status"), Scalar::Str("in use")),
        (Key::Str("status"), Scalar::Null),
    ]);
    let mut list = List::default();
    let updates = UpdatesRef::Dict(list.dicts.push(dict).unwrap());
    list.known.extend(row(Target::Volume, None));
    list.entries.push(Entry::dict(Id::Str { id: "v1", current: Some(0) }, updates));
    let input = Input { service: Service::Null, volumes: Entries::List(list), groups: Entries::empty() };
    let allowed = "allowed: provider_auth, provider_id, provider_location, replication_driver_data, \
                   replication_extended_status, replication_status, status";
    assert_eq!(
        refused(input),
        vec![
            "volume_updates[0]: keys must be strings, got bytes".to_string(),
            format!("volume_updates[0]: key 'previous_status' may not be updated; {allowed}"),
            format!("volume_updates[0]: key 'previous_status' may not be updated; {allowed}"),
            "volume_updates[0]: 'provider_id' must be a string or None, got int".into(),
            "volume_updates[0]: 'provider_id' is not valid UTF-8".into(),
            "volume_updates[0]: 'replication_driver_data' is 256 characters; the column holds 255".into(),
            "volume_updates[0]: 'provider_auth' is 257 characters; the column holds 256".into(),
            "volume_updates[0]: invalid replication_status None".into(),
            "volume_updates[0]: invalid replication_status 'updating'".into(),
            "volume_updates[0]: invalid status 'in use'".into(),
            "volume_updates[0]: invalid status None".into(),
        ]
    );
    // Group statuses are Cinder's group statuses.
    let input = Builder::group(&[("g", None)])
        .add("g", &[("status", Some("deleted")), ("replication_status", Some("enabled"))])
        .add("g", &[("status", Some("in use")), ("provider_id", Some("x"))])
        .groups();
    assert_eq!(
        refused(input),
        vec![
            "group_updates[1]: group 'g' appears more than once (first at [0])",
            "group_updates[1]: invalid status 'in use'",
            "group_updates[1]: key 'provider_id' may not be updated; allowed: replication_status, status",
        ]
    );
}

#[test]
fn a_shared_dict_reports_for_each_entry() {
    let input = Builder::new(&KNOWN).add("v1", &[("status", Some("bogus"))]).share("v2", 0).volumes();
    let problem = "invalid status 'bogus'";
    let expected: Vec<String> = (0..2).map(|i| format!("volume_updates[{i}]: {problem}")).collect();
    assert_eq!(refused(input), expected);
}

#[test]
fn only_fifty_problems_are_written_out() {
    let mut b = Builder::new(&[]);
    for _ in 0..120 {
        b = b.raw(Entry::not_a_dict("int"));
    }
    let Err(Error::DriverAnswer { message, details }) = plan(b.volumes(), limits(8, 1)) else { panic!() };
    assert_eq!(message, "the driver's answer was refused: 120 problem(s); nothing was written");
    assert_eq!(details.len(), 51);
    assert_eq!(details[49], "volume_updates[49]: expected a dict with 'volume_id' and 'updates', got int");
    assert_eq!(details[50], "... and 70 more problem(s)");
}

#[test]
fn quoting_code_points() {
    assert_eq!(quote_code_points(&[0x61, 0x0a, 0xd800, 0x10ffff, 0x85]), "'a\\x0a\\ud800\u{10ffff}\\x85'");
    assert_eq!(quote_code_points(&[0x61, 0x62]), quote("ab"));
}

#[test]
fn known_errors() {
    let error = |target, id, problem| known_row_error(target, id, problem);
    assert_eq!(
        error(Target::Volume, "v\n", KnownProblem::NotATuple("str")),
        Error::ArgumentType("known_volumes['v\\x0a'] must be a tuple of at least 7 values, got str".into())
    );
    assert_eq!(
        error(Target::Group, "g", KnownProblem::Length(1)),
        Error::ArgumentType("known_groups['g'] must be a tuple of at least 2 values, got a tuple of 1".into())
    );
    assert_eq!(
        error(Target::Volume, "v", KnownProblem::ValueType(6, "int")),
        Error::ArgumentType("known_volumes['v'][6] must be a string or None, got int".into())
    );
    assert_eq!(
        error(Target::Group, "g", KnownProblem::ValueNotUtf8(1)),
        Error::ArgumentValue("known_groups['g'][1] is not valid UTF-8".into())
    );
    assert_eq!(known_not_a_dict(Target::Volume, "list").to_string(), "known_volumes: expected a dict, got list");
}

#[test]
#[cfg_attr(miri, ignore = "40,000 hashes into hash sets: a quality check, minutes under Miri")]
fn text_hash_spreads_similar_keys() {
    use std::collections::HashSet;
    for texts in [
        (0..10_000).map(|i| format!("vol-{i}")).collect::<Vec<_>>(),
        (0..10_000).map(|i| "x".repeat(i)).collect(),
        (0..10_000).map(|i| format!("{i:036}")).collect(),
        // The counter straddles two words.
        (0..10_000).map(|i| format!("pair-{i:06}")).collect(),
    ] {
        let hashes: Vec<u64> = texts.iter().map(|t| text_hash(t)).collect();
        assert_eq!(hashes.iter().collect::<HashSet<_>>().len(), 10_000);
        // 10,000 random values in 65,536 buckets fill about 9,270 of them.
        for bits in [|h: u64| h & 0xffff, |h: u64| h >> 48] {
            let filled = hashes.iter().map(|h| bits(*h)).collect::<HashSet<_>>().len();
            assert!(filled > 9_100, "{filled}");
        }
    }
}

#[test]
fn a_service_key_twice_is_refused() {
    let twice = items(&[("replication_status", Some("enabled")), ("replication_status", Some("disabled"))]);
    let input = Input { service: Service::Dict(twice), volumes: Entries::empty(), groups: Entries::empty() };
    assert_eq!(one_problem(input), "service_update: key 'replication_status' appears more than once");
}

#[test]
fn a_length_is_counted_in_characters() {
    // 456 bytes, 256 characters: refused for its characters, quoted by their count.
    let long = "é".repeat(200) + &"x".repeat(56);
    let input = Builder::new(&KNOWN).add("v1", &[("provider_id", Some(long.as_str()))]).volumes();
    assert_eq!(one_problem(input), "volume_updates[0]: 'provider_id' is 256 characters; the column holds 255");
}
