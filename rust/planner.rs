//! The update planner of the startup hook `update_host_replication` (SPEC
//! section 5): check a driver's answer against what the database holds, then
//! turn it into batched writes.
//!
//! The input is the driver's answer as the binding found it (strings are
//! borrowed through [`Text`], anything else is reduced to its type name), and
//! every problem is collected before anything is refused. Identical updates
//! become set-based `UPDATE ... WHERE id IN (...)` chunks; the others become
//! column-wise row chunks, both sized to the database's bind-parameter limit.
//! The pure-Python twin (`_reference.plan_updates`) gives the same plans and
//! the same messages.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::ops::Range;

use crate::error::{quote, Error};
use crate::validate::{FENCE_STATUS, REPLICATION_STATUSES};

/// A refusal names at most this many problems, then how many more there are.
pub const MAX_PROBLEM_LINES: usize = 50;
/// The smallest bind-parameter limit we plan for.
pub const MIN_MAX_PARAMS: i64 = 8;
/// The smallest group of identical updates that may become a set-based write.
pub const MIN_MIN_GROUP: i64 = 1;

/// Cinder's `fields.VolumeStatus` values.
pub const VOLUME_STATUSES: [&str; 22] = [
    "creating",
    "available",
    "deleting",
    "error",
    "error_deleting",
    "error_managing",
    "managing",
    "attaching",
    "in-use",
    "detaching",
    "maintenance",
    "restoring-backup",
    "error_restoring",
    "reserved",
    "awaiting-transfer",
    "backing-up",
    "error_backing-up",
    "error_extending",
    "downloading",
    "uploading",
    "retyping",
    "extending",
];

/// Cinder's `fields.GroupStatus` values.
pub const GROUP_STATUSES: [&str; 8] =
    ["error", "available", "creating", "deleting", "deleted", "updating", "in-use", "error_deleting"];

/// A replication status a driver may report: Cinder's values, never the fence.
fn is_driver_replication_status(value: &str) -> bool {
    value != FENCE_STATUS && REPLICATION_STATUSES.contains(&value)
}

/// A string the binding borrowed from the driver's answer. `&str` in tests;
/// the binding's implementation also remembers which Python object it is (so
/// that the plan hands the driver's own objects back).
pub trait Text: Copy {
    fn as_str(&self) -> &str;

    /// [`text_hash`] of the text.
    fn text_hash(&self) -> u64 {
        text_hash(self.as_str())
    }
}

impl Text for &str {
    fn as_str(&self) -> &str {
        self
    }
}

/// The hash the planner groups and deduplicates strings by.
pub fn text_hash(text: &str) -> u64 {
    let mut hasher = FastHasher::default();
    hasher.write_usize(text.len());
    hasher.write(text.as_bytes());
    hasher.finish()
}

/// A column the hook may write, in the order of their names (so that sorting
/// columns sorts their names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Column {
    ActiveBackendId,
    PreviousStatus,
    ProviderAuth,
    ProviderId,
    ProviderLocation,
    ReplicationDriverData,
    ReplicationExtendedStatus,
    ReplicationStatus,
    Status,
}

impl Column {
    pub const ALL: [Column; 9] = [
        Column::ActiveBackendId,
        Column::PreviousStatus,
        Column::ProviderAuth,
        Column::ProviderId,
        Column::ProviderLocation,
        Column::ReplicationDriverData,
        Column::ReplicationExtendedStatus,
        Column::ReplicationStatus,
        Column::Status,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::ActiveBackendId => "active_backend_id",
            Column::PreviousStatus => "previous_status",
            Column::ProviderAuth => "provider_auth",
            Column::ProviderId => "provider_id",
            Column::ProviderLocation => "provider_location",
            Column::ReplicationDriverData => "replication_driver_data",
            Column::ReplicationExtendedStatus => "replication_extended_status",
            Column::ReplicationStatus => "replication_status",
            Column::Status => "status",
        }
    }

    /// The width of the column in characters (Cinder's `String(n)`).
    pub fn max_chars(self) -> usize {
        match self {
            Column::ProviderAuth | Column::ProviderLocation => 256,
            _ => 255,
        }
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }

    /// The column of this name.
    pub fn named(name: &str) -> Option<Column> {
        Column::ALL.iter().copied().find(|c| c.name() == name)
    }
}

/// What a driver's update is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Service,
    Volume,
    Group,
}

impl Target {
    /// The columns a driver may set, sorted by name.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Target::Service => &[Column::ActiveBackendId, Column::ReplicationStatus],
            Target::Volume => &[
                Column::ProviderAuth,
                Column::ProviderId,
                Column::ProviderLocation,
                Column::ReplicationDriverData,
                Column::ReplicationExtendedStatus,
                Column::ReplicationStatus,
                Column::Status,
            ],
            Target::Group => &[Column::ReplicationStatus, Column::Status],
        }
    }

    /// The columns of the caller's tuples of current values, in their order:
    /// the contract's order of the allowed keys (`VOLUME_KEYS`, `GROUP_KEYS`).
    pub fn known_columns(self) -> &'static [Column] {
        match self {
            Target::Service => &[],
            Target::Volume => &[
                Column::ReplicationStatus,
                Column::ReplicationExtendedStatus,
                Column::ReplicationDriverData,
                Column::ProviderId,
                Column::ProviderLocation,
                Column::ProviderAuth,
                Column::Status,
            ],
            Target::Group => &[Column::ReplicationStatus, Column::Status],
        }
    }

    /// The place of an allowed column in [`Target::known_columns`].
    fn known_index(self, column: Column) -> usize {
        self.known_columns().iter().position(|&c| c == column).expect("an allowed column")
    }

    fn allows(self, column: Column) -> bool {
        self.columns().contains(&column)
    }

    fn valid_value(self, column: Column, value: &str) -> Option<bool> {
        match (self, column) {
            (_, Column::ReplicationStatus) => Some(is_driver_replication_status(value)),
            (Target::Volume, Column::Status) => Some(VOLUME_STATUSES.contains(&value)),
            (Target::Group, Column::Status) => Some(GROUP_STATUSES.contains(&value)),
            _ => None,
        }
    }

    /// `volume` / `group`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Service => "service",
            Target::Volume => "volume",
            Target::Group => "group",
        }
    }

    /// The driver's list: `volume_updates` / `group_updates`.
    pub fn list_name(self) -> &'static str {
        match self {
            Target::Service => "service_update",
            Target::Volume => "volume_updates",
            Target::Group => "group_updates",
        }
    }

    /// The id key of an entry: `volume_id` / `group_id`.
    pub fn id_key(self) -> &'static str {
        match self {
            Target::Service => "service_id",
            Target::Volume => "volume_id",
            Target::Group => "group_id",
        }
    }

    /// The caller's map of live rows: `known_volumes` / `known_groups`.
    pub fn known_name(self) -> &'static str {
        match self {
            Target::Service => "known_services",
            Target::Volume => "known_volumes",
            Target::Group => "known_groups",
        }
    }
}

// ---------------------------------------------------------------- the input

/// A dict key of the driver's answer.
#[derive(Debug, Clone)]
pub enum Key<S> {
    /// A str that is the name of a column (the binding recognises them
    /// without keeping the str): the same as `Str` of that name.
    Column(Column),
    Str(S),
    /// A str Python cannot encode as UTF-8 (lone surrogates): its code points.
    NotUtf8(Box<[u32]>),
    /// Not a str: the name of its type.
    Other(S),
}

/// A value of the driver's answer.
#[derive(Debug, Clone)]
pub enum Scalar<S> {
    Null,
    Str(S),
    NotUtf8,
    /// Not a str: the name of its type.
    Other(S),
}

/// A `key: value` item of a dict.
#[derive(Debug, Clone)]
pub enum Item<S> {
    /// A str key naming a column, with a str or None: the usual item, kept small.
    Column(Column, Option<S>),
    /// Any other item.
    Other(Box<(Key<S>, Scalar<S>)>),
}

impl<S> Item<S> {
    pub fn new(key: Key<S>, value: Scalar<S>) -> Self {
        match (key, value) {
            (Key::Column(c), Scalar::Null) => Item::Column(c, None),
            (Key::Column(c), Scalar::Str(s)) => Item::Column(c, Some(s)),
            (key, value) => Item::Other(Box::new((key, value))),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Service<S> {
    Null,
    NotADict(S),
    Dict(Vec<Item<S>>),
}

/// The id of an entry. For a str, `current` is its row in [`List::known`]:
/// the current values the caller's map of live rows holds for it (`None`: not
/// a live row).
#[derive(Debug, Clone)]
pub enum Id<S> {
    Str { id: S, current: Option<u32> },
    NotUtf8,
    Other(S),
}

/// The `updates` of an entry: an index into [`List::dicts`] (drivers share one
/// dict between many entries; it is read and checked once), or a type name.
#[derive(Debug, Clone)]
pub enum UpdatesRef<S> {
    Dict(u32),
    Other(S),
}

/// An entry of a driver's list. The usual one, a dict with a str id and an
/// updates dict, is kept small (24 bytes with the binding's strings, where an
/// [`OddEntry`] takes 40: the entries of a large answer fill fresh memory);
/// the others are boxed. Made by [`Entry::dict`], [`Entry::not_a_dict`] and
/// [`Entry::bad_shape`].
#[derive(Debug, Clone)]
pub enum Entry<S> {
    /// `current` is [`Id::Str`]'s, [`NOT_LIVE`] for None; `dict` is
    /// [`UpdatesRef::Dict`]'s.
    Usual { id: S, current: u32, dict: u32 },
    Odd(Box<OddEntry<S>>),
}

/// [`Entry::Usual`]'s `current` of an id that is not a live row.
pub const NOT_LIVE: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub enum OddEntry<S> {
    NotADict(S),
    /// A dict without exactly the two keys `<kind>_id` and `updates`.
    BadShape(BadShape<S>),
    Dict { id: Id<S>, updates: UpdatesRef<S> },
}

impl<S: Copy> Entry<S> {
    /// A dict with the id and updates keys.
    pub fn dict(id: Id<S>, updates: UpdatesRef<S>) -> Self {
        match (id, updates) {
            (Id::Str { id, current }, UpdatesRef::Dict(dict)) if current != Some(NOT_LIVE) => {
                Entry::Usual { id, current: current.unwrap_or(NOT_LIVE), dict }
            }
            (id, updates) => Entry::Odd(Box::new(OddEntry::Dict { id, updates })),
        }
    }

    /// Not a dict: the name of its type.
    pub fn not_a_dict(type_name: S) -> Self {
        Entry::Odd(Box::new(OddEntry::NotADict(type_name)))
    }

    pub fn bad_shape(shape: BadShape<S>) -> Self {
        Entry::Odd(Box::new(OddEntry::BadShape(shape)))
    }

    /// The id of a dict entry whose id is a str.
    fn str_id(&self) -> Option<S> {
        match self {
            Entry::Usual { id, .. } => Some(*id),
            Entry::Odd(odd) => match odd.as_ref() {
                OddEntry::Dict { id: Id::Str { id, .. }, .. } => Some(*id),
                _ => None,
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct BadShape<S> {
    pub missing_id: bool,
    pub missing_updates: bool,
    pub unexpected: Vec<Key<S>>,
}

/// The updates dicts of a list, their items end to end, and a hash of each
/// one's columns and values, taken as the items come (while their texts are
/// at hand, rather than when the planner reads them again). A column and its
/// value are kept in two arrays, 17 bytes an item with the binding's strings
/// where an [`Item`] takes 24: every page of fresh memory costs a page fault.
#[derive(Debug, Clone)]
pub struct Dicts<S> {
    columns: Vec<Column>,
    values: Vec<Option<S>>,
    /// The items that are not a column's value (yet), by position: their
    /// places in `columns` and `values` hold placeholders until `check_dict`.
    others: Vec<(u32, Item<S>)>,
    ends: Vec<u32>,
    /// The low halves of the hashes: a sum's low half needs only those of
    /// its terms, so the items that only `check_dict` makes columns join it.
    hashes: Vec<u32>,
    /// The hash of the dict being read.
    hash: u32,
}

impl<S> Default for Dicts<S> {
    fn default() -> Self {
        Dicts {
            columns: Vec::new(),
            values: Vec::new(),
            others: Vec::new(),
            ends: Vec::new(),
            hashes: Vec::new(),
            hash: 0,
        }
    }
}

impl<S: Text> Dicts<S> {
    /// Add a dict; its index.
    pub fn push(&mut self, items: impl IntoIterator<Item = Item<S>>) -> u32 {
        for item in items {
            self.item(item);
        }
        self.end()
    }

    /// Add an item to the dict being read; `end` closes it.
    pub fn item(&mut self, item: Item<S>) {
        match item {
            Item::Column(column, value) => self.column(column, value, item_hash(column, value)),
            Item::Other(_) => {
                self.others.push((u32::try_from(self.columns.len()).expect("fewer than 2**32 items"), item));
                self.columns.push(Column::ActiveBackendId);
                self.values.push(None);
            }
        }
    }

    /// Add `Item::Column(column, value)`, whose [`item_hash`] the caller had
    /// at hand.
    pub fn column(&mut self, column: Column, value: Option<S>, hash: u64) {
        // A sum: the same items in any order give the same hash.
        self.hash = self.hash.wrapping_add(hash as u32);
        self.columns.push(column);
        self.values.push(value);
    }

    pub fn end(&mut self) -> u32 {
        self.ends.push(u32::try_from(self.columns.len()).expect("fewer than 2**32 items"));
        self.hashes.push(std::mem::take(&mut self.hash));
        (self.ends.len() - 1) as u32
    }
}

impl<S> Dicts<S> {
    /// Make room for `dicts` more dicts with `items` items in all.
    pub fn reserve(&mut self, dicts: usize, items: usize) {
        self.ends.reserve(dicts);
        self.hashes.reserve(dicts);
        self.columns.reserve(items);
        self.values.reserve(items);
    }

    fn range(&self, index: u32) -> Range<usize> {
        let i = index as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        start..self.ends[i] as usize
    }

    /// The columns and values of a checked dict, sorted by column.
    fn content(&self, index: u32) -> Content<'_, S> {
        let range = self.range(index);
        Content(&self.columns[range.clone()], &self.values[range])
    }

    /// The hash of a dict's columns and values.
    fn hash(&self, index: u32) -> u64 {
        u64::from(self.hashes[index as usize])
    }

    /// The items of a checked dict whose columns are in `keep`, sorted by column.
    fn kept(&self, index: u32, keep: u16) -> impl Iterator<Item = (Column, Option<S>)> + '_
    where
        S: Copy,
    {
        let Content(columns, values) = self.content(index);
        columns.iter().copied().zip(values.iter().copied()).filter(move |(c, _)| keep & c.bit() != 0)
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct List<S> {
    pub entries: Vec<Entry<S>>,
    pub dicts: Dicts<S>,
    /// The current values of the live rows the entries name, as the caller's
    /// map holds them: a row of [`Target::known_columns`] values each.
    pub known: Vec<Option<S>>,
    /// The binding vouches that no two str ids are equal: each was an exact
    /// str that is itself a key of the caller's map of live rows, found at a
    /// later position than the one before, and no Python code ran meanwhile.
    /// The planner then does not look for repeated ids.
    pub ids_distinct: bool,
}

impl<S> Default for List<S> {
    fn default() -> Self {
        List { entries: Vec::new(), dicts: Dicts::default(), known: Vec::new(), ids_distinct: false }
    }
}

#[derive(Debug, Clone)]
pub enum Entries<S> {
    NotAList(S),
    List(List<S>),
}

impl<S> Entries<S> {
    pub fn empty() -> Self {
        Entries::List(List::default())
    }
}

#[derive(Debug, Clone)]
pub struct Input<S> {
    pub service: Service<S>,
    pub volumes: Entries<S>,
    pub groups: Entries<S>,
}

/// The database's bind-parameter limit and the smallest set-based group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_params: usize,
    pub min_group: usize,
}

// ----------------------------------------------------------------- the plan

/// Identical updates for many rows: one `UPDATE ... SET values WHERE id IN ids`;
/// the ids are [`KindPlan::ids`] of `members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetChunk<S> {
    pub values: Vec<(Column, Option<S>)>,
    pub members: Range<usize>,
}

/// Distinct updates of the same columns, a row per member: see
/// [`KindPlan::rows`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowChunk {
    pub columns: Vec<Column>,
    pub members: Range<usize>,
}

/// The writes for one kind of row. The chunks refer to the driver's list
/// (which the plan owns) rather than copying its strings.
#[derive(Debug, Clone)]
pub struct KindPlan<S> {
    /// Entries with something to write.
    pub count: usize,
    /// Entries whose every value equals the row's current one: not written.
    pub unchanged: usize,
    pub sets: Vec<SetChunk<S>>,
    pub rows: Vec<RowChunk>,
    /// The entries of the chunks, as indices into `ready`, chunk after chunk.
    members: Vec<u32>,
    ready: Vec<Ready>,
    /// The previous statuses, each distinct one once (see [`Ready::previous`]).
    statuses: Vec<Option<S>>,
    list: List<S>,
}

impl<S: Text> KindPlan<S> {
    fn id(&self, r: &Ready) -> S {
        self.list.entries[r.entry as usize].str_id().expect("a ready entry has a str id")
    }

    /// The ids of a chunk's members, in input order.
    pub fn ids(&self, members: Range<usize>) -> impl ExactSizeIterator<Item = S> + '_ {
        self.members[members].iter().map(|&m| self.id(&self.ready[m as usize]))
    }

    /// The rows of a row chunk, in input order: each id with its values, one
    /// per column of the chunk. (One pass over the members for all columns.)
    pub fn rows<'a>(
        &'a self,
        chunk: &'a RowChunk,
    ) -> impl ExactSizeIterator<Item = (S, impl Iterator<Item = Option<S>> + 'a)> + 'a {
        let previous = chunk.columns.first() == Some(&Column::PreviousStatus);
        self.members[chunk.members.clone()].iter().map(move |&m| {
            let r = &self.ready[m as usize];
            // previous_status, the first volume column by name, is not in the dict.
            let status = r.previous.filter(|_| previous).map(|p| self.statuses[p as usize]);
            let values = self.list.dicts.kept(r.dict, r.keep).map(|(_, value)| value);
            (self.id(r), status.into_iter().chain(values))
        })
    }
}

#[derive(Debug, Clone)]
pub struct Plan<S> {
    /// The service's columns, in the driver's order.
    pub service: Vec<(Column, Option<S>)>,
    pub volumes: KindPlan<S>,
    pub groups: KindPlan<S>,
}

// --------------------------------------------------------------- the errors

/// Check one limit; `shown` is how Python prints the value (a Python int may
/// not fit in an i64, which then saturates).
pub fn check_limit(name: &str, value: i64, min: i64, shown: impl FnOnce() -> String) -> Result<usize, Error> {
    if value < min {
        return Err(Error::ArgumentValue(format!("{name} must be at least {min}, got {}", shown())));
    }
    Ok(usize::try_from(value).unwrap_or(usize::MAX))
}

/// Check the bind-parameter limit and the smallest set-based group.
pub fn check_limits(max_params: i64, min_group: i64) -> Result<Limits, Error> {
    Ok(Limits {
        max_params: check_limit("max_params", max_params, MIN_MAX_PARAMS, || max_params.to_string())?,
        min_group: check_limit("min_group", min_group, MIN_MIN_GROUP, || min_group.to_string())?,
    })
}

/// `known_volumes: expected a dict, got list`.
pub fn known_not_a_dict(target: Target, type_name: &str) -> Error {
    Error::ArgumentType(format!("{}: expected a dict, got {type_name}", target.known_name()))
}

/// What is wrong with a row's current values in the caller's map of live rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownProblem<'a> {
    /// Not a tuple: the name of its type.
    NotATuple(&'a str),
    /// A tuple of this many values, not [`Target::known_columns`]'s.
    Length(usize),
    /// Value `k` is not a str or None: the name of its type.
    ValueType(usize, &'a str),
    /// Value `k` is a str that is not valid UTF-8.
    ValueNotUtf8(usize),
}

/// `known_volumes['v1'] must be a tuple of 7 values, got int`, and the like.
pub fn known_row_error(target: Target, id: &str, problem: KnownProblem<'_>) -> Error {
    let at = format!("{}[{}]", target.known_name(), quote(id));
    let width = target.known_columns().len();
    match problem {
        KnownProblem::NotATuple(t) => Error::ArgumentType(format!("{at} must be a tuple of {width} values, got {t}")),
        KnownProblem::Length(n) => {
            Error::ArgumentType(format!("{at} must be a tuple of {width} values, got a tuple of {n}"))
        }
        KnownProblem::ValueType(k, t) => Error::ArgumentType(format!("{at}[{k}] must be a string or None, got {t}")),
        KnownProblem::ValueNotUtf8(k) => Error::ArgumentValue(format!("{at}[{k}] is not valid UTF-8")),
    }
}

/// Quote a str given as code points: like [`quote`], and lone surrogates
/// (which no Rust string holds) are shown as `\udXXX`.
pub fn quote_code_points(code_points: &[u32]) -> String {
    let mut out = String::with_capacity(code_points.len() + 2);
    out.push('\'');
    for &cp in code_points {
        match char::from_u32(cp) {
            Some(c) if !c.is_control() => out.push(c),
            Some(c) => out.push_str(&format!("\\x{:02x}", c as u32)),
            None => out.push_str(&format!("\\u{cp:04x}")),
        }
    }
    out.push('\'');
    out
}

/// Every problem is counted; the first [`MAX_PROBLEM_LINES`] are written out.
#[derive(Default)]
struct Problems {
    lines: Vec<String>,
    count: usize,
}

impl Problems {
    fn add(&mut self, line: impl FnOnce() -> String) {
        self.count += 1;
        if self.lines.len() < MAX_PROBLEM_LINES {
            self.lines.push(line());
        }
    }

    fn refusal(mut self) -> Error {
        let n = self.count;
        if n > MAX_PROBLEM_LINES {
            self.lines.push(format!("... and {} more problem(s)", n - MAX_PROBLEM_LINES));
        }
        Error::DriverAnswer {
            message: format!("the driver's answer was refused: {n} problem(s); nothing was written"),
            details: self.lines,
        }
    }
}

// ------------------------------------------------------------ the checking

fn not_allowed(target: Target, quoted_key: &str) -> String {
    let allowed: Vec<&str> = target.columns().iter().map(|c| c.name()).collect();
    format!("key {quoted_key} may not be updated; allowed: {}", allowed.join(", "))
}

/// The one problem of an item of an update, or its column and value.
fn check_item<S: Text>(target: Target, item: &Item<S>) -> Result<(Column, Option<S>), String> {
    let (key, value) = match item {
        Item::Column(column, value) => return check_value(target, *column, *value).map(|()| (*column, *value)),
        Item::Other(pair) => (&pair.0, &pair.1),
    };
    let column = match key {
        Key::Other(t) => return Err(format!("keys must be strings, got {}", t.as_str())),
        Key::NotUtf8(cps) => return Err(not_allowed(target, &quote_code_points(cps))),
        Key::Column(c) => *c,
        Key::Str(k) => match Column::named(k.as_str()) {
            Some(c) => c,
            None => return Err(not_allowed(target, &quote(k.as_str()))),
        },
    };
    let name = column.name();
    match value {
        _ if !target.allows(column) => Err(not_allowed(target, &quote(name))),
        Scalar::Null => check_value::<S>(target, column, None).map(|()| (column, None)),
        Scalar::Str(s) => check_value(target, column, Some(*s)).map(|()| (column, Some(*s))),
        Scalar::NotUtf8 => Err(format!("'{name}' is not valid UTF-8")),
        Scalar::Other(t) => Err(format!("'{name}' must be a string or None, got {}", t.as_str())),
    }
}

/// The one problem of a column and its value (a str or None), if any.
#[inline]
fn check_value<S: Text>(target: Target, column: Column, value: Option<S>) -> Result<(), String> {
    // Quick checks pass the usual value inline; `value_problem` tells the
    // others apart (a str longer in bytes may still fit in characters).
    let fits = value.map_or(true, |s| s.as_str().len() <= column.max_chars());
    let valid = match value {
        Some(s) => target.valid_value(column, s.as_str()) != Some(false),
        None => target.valid_value(column, "").is_none(),
    };
    if target.allows(column) && fits && valid {
        return Ok(());
    }
    value_problem(target, column, value).map_or(Ok(()), Err)
}

#[cold]
fn value_problem<S: Text>(target: Target, column: Column, value: Option<S>) -> Option<String> {
    let name = column.name();
    if !target.allows(column) {
        return Some(not_allowed(target, &quote(name)));
    }
    if let Some(s) = value {
        let limit = column.max_chars();
        // A str has at most as many characters as UTF-8 bytes.
        if s.as_str().len() > limit {
            let n = s.as_str().chars().count();
            if n > limit {
                return Some(format!("'{name}' is {n} characters; the column holds {limit}"));
            }
        }
    }
    let valid = match value {
        Some(s) => target.valid_value(column, s.as_str()),
        None => target.valid_value(column, "").map(|_| false),
    };
    if valid == Some(false) {
        let shown = value.map_or_else(|| "None".to_string(), |s| quote(s.as_str()));
        return Some(format!("invalid {name} {shown}"));
    }
    None
}

/// An updates dict, checked once however many entries share it.
struct Checked {
    /// The end of its problems in `dict_problems` (of `check_entries`), where
    /// the previous dict's end.
    problems_end: u32,
    /// Its columns.
    mask: u16,
}

/// The hash of one item of a dict; a dict's hash is the sum of its items'.
pub fn item_hash<S: Text>(column: Column, value: Option<S>) -> u64 {
    let mut hasher = FastHasher::default();
    hasher.write_u64(value.map_or(0, |v| v.text_hash() | 1).wrapping_add(column as u64));
    hasher.finish()
}

/// Check dict `d`'s items, in the dict's order, making its other items
/// columns' values where they pass. A dict without problems is left sorted
/// by column.
fn check_dict<S: Text>(target: Target, dicts: &mut Dicts<S>, d: u32, problems: &mut Vec<String>) -> Checked {
    let start = problems.len();
    let range = dicts.range(d);
    let first_other = dicts.others.partition_point(|&(at, _)| (at as usize) < range.start);
    let mut others = dicts.others[first_other..].iter().take_while(|&&(at, _)| (at as usize) < range.end).peekable();
    let mut mask = 0u16;
    for at in range.clone() {
        let checked = match others.next_if(|&&(o, _)| o as usize == at) {
            None => check_value(target, dicts.columns[at], dicts.values[at]).map(|()| dicts.columns[at]),
            // Only a `Key::Str` naming a column passes here (the binding
            // recognises those itself): it joins the hash now.
            Some((_, item)) => check_item(target, item).map(|(column, value)| {
                (dicts.columns[at], dicts.values[at]) = (column, value);
                dicts.hashes[d as usize] = dicts.hashes[d as usize].wrapping_add(item_hash(column, value) as u32);
                column
            }),
        };
        match checked {
            Err(problem) => problems.push(problem),
            // Only a str subclass that redefines hashing can repeat a column.
            Ok(column) if mask & column.bit() != 0 => {
                problems.push(format!("key '{}' appears more than once", column.name()))
            }
            Ok(column) => mask |= column.bit(),
        }
    }
    if problems.len() == start {
        // A handful of items: sorted in place, without a call.
        let (columns, values) = (&mut dicts.columns[range.clone()], &mut dicts.values[range]);
        for i in 1..columns.len() {
            let mut j = i;
            while j > 0 && columns[j - 1] > columns[j] {
                columns.swap(j - 1, j);
                values.swap(j - 1, j);
                j -= 1;
            }
        }
    }
    Checked { problems_end: problems.len() as u32, mask }
}

/// An entry that passed every check and has something to write.
#[derive(Debug, Clone, Copy)]
struct Ready {
    entry: u32,
    dict: u32,
    /// The columns of the dict whose values differ from the row's: the ones written.
    keep: u16,
    /// When the update changes the volume's status: the old one, as an index
    /// into [`Checks::statuses`] (each distinct status once).
    previous: Option<u32>,
}

fn check_service<S: Text>(service: &Service<S>, problems: &mut Problems) -> Vec<(Column, Option<S>)> {
    let items = match service {
        Service::Null => return Vec::new(),
        Service::NotADict(t) => {
            problems.add(|| format!("service_update: expected a dict or None, got {}", t.as_str()));
            return Vec::new();
        }
        Service::Dict(items) => items,
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match check_item(Target::Service, item) {
            Ok(pair) => out.push(pair),
            Err(problem) => problems.add(|| format!("service_update: {problem}")),
        }
    }
    out
}

/// A hash and an index in one word that sorts by the hash's high half, then
/// by the index. Sorting these finds equal values without a hash map (which
/// at 100,000 values costs a cache miss each): sequential work on 8 bytes a
/// value. The values whose hashes share a high half are then compared; few
/// unequal ones do.
fn packed(hash: u64, index: usize) -> u64 {
    hash & !u64::from(u32::MAX) | index as u64
}

/// The indices of each run of two or more sorted packed words sharing a high
/// half, in index order.
fn shared_hash_runs(sorted: &[u64]) -> impl Iterator<Item = impl Iterator<Item = u32> + '_> + '_ {
    sorted.chunk_by(|a, b| a >> 32 == b >> 32).filter(|run| run.len() > 1).map(|run| run.iter().map(|&k| k as u32))
}

/// The entries whose id appeared earlier in the list, each with the index of
/// that first appearance. Only ids whose hashes share a high half (see
/// [`packed`]) are compared by text.
fn repeated_ids<S: Text>(entries: &[Entry<S>]) -> FastMap<u32, u32> {
    let id_of = |i: u32| entries[i as usize].str_id().expect("only str ids are keyed");
    let mut keyed: Vec<u64> =
        entries.iter().enumerate().filter_map(|(i, e)| Some(packed(e.str_id()?.text_hash(), i))).collect();
    keyed.sort_unstable();
    let mut repeated = FastMap::default();
    for run in shared_hash_runs(&keyed) {
        // In index order: the first of each text is its first appearance.
        let mut first: FastMap<ByText<S>, u32> = FastMap::default();
        for i in run {
            let j = *first.entry(ByText(id_of(i))).or_insert(i);
            if j != i {
                repeated.insert(i, j);
            }
        }
    }
    repeated
}

/// What the checks of a list leave for the planning.
struct Checks<S> {
    ready: Vec<Ready>,
    /// The entries that passed and change nothing.
    unchanged: usize,
    statuses: Vec<Option<S>>,
    dicts: Vec<Checked>,
    list: List<S>,
}

fn check_entries<S: Text>(target: Target, entries: Entries<S>, problems: &mut Problems) -> Checks<S> {
    let list_name = target.list_name();
    let id_key = target.id_key();
    let kind = target.name();
    let mut list = match entries {
        Entries::NotAList(t) => {
            problems.add(|| format!("{list_name}: expected a list, got {}", t.as_str()));
            return Checks {
                ready: Vec::new(),
                unchanged: 0,
                statuses: Vec::new(),
                dicts: Vec::new(),
                list: List::default(),
            };
        }
        Entries::List(list) => list,
    };
    let mut dict_problems = Vec::new();
    let checked: Vec<Checked> = (0..list.dicts.len() as u32)
        .map(|d| check_dict(target, &mut list.dicts, d, &mut dict_problems))
        .collect();
    // The previous statuses, each distinct one once.
    let mut statuses: Vec<Option<S>> = Vec::new();
    let mut status_at: FastMap<Option<ByText<S>>, u32> = FastMap::default();
    let width = target.known_columns().len();
    let mut unchanged = 0;
    let repeated = if list.ids_distinct { FastMap::default() } else { repeated_ids(&list.entries) };
    let mut ready = Vec::with_capacity(list.entries.len());
    for (i, entry) in list.entries.iter().enumerate() {
        let at = || format!("{list_name}[{i}]");
        let (id, updates) = match entry {
            Entry::Usual { id, current, dict } => {
                (Id::Str { id: *id, current: Some(*current).filter(|&c| c != NOT_LIVE) }, UpdatesRef::Dict(*dict))
            }
            Entry::Odd(odd) => match odd.as_ref() {
                OddEntry::Dict { id, updates } => (id.clone(), updates.clone()),
                OddEntry::NotADict(t) => {
                problems.add(|| format!("{}: expected a dict with '{id_key}' and 'updates', got {}", at(), t.as_str()));
                    continue;
                }
                OddEntry::BadShape(shape) => {
                    if shape.missing_id {
                        problems.add(|| format!("{}: missing '{id_key}'", at()));
                    }
                    if shape.missing_updates {
                        problems.add(|| format!("{}: missing 'updates'", at()));
                    }
                    for key in &shape.unexpected {
                        problems.add(|| match key {
                            Key::Column(c) => format!("{}: unexpected key {}", at(), quote(c.name())),
                            Key::Str(k) => format!("{}: unexpected key {}", at(), quote(k.as_str())),
                            Key::NotUtf8(cps) => format!("{}: unexpected key {}", at(), quote_code_points(cps)),
                            Key::Other(t) => format!("{}: unexpected key of type {}", at(), t.as_str()),
                        });
                    }
                    continue;
                }
            },
        };
        let before = problems.count;
        match &id {
            Id::Other(t) => problems.add(|| format!("{}: {id_key} must be a string, got {}", at(), t.as_str())),
            Id::NotUtf8 => problems.add(|| format!("{}: {id_key} is not valid UTF-8", at())),
            Id::Str { .. } => {}
        }
        let dict = match &updates {
            UpdatesRef::Other(t) => {
                problems.add(|| format!("{}: updates must be a dict, got {}", at(), t.as_str()));
                None
            }
            UpdatesRef::Dict(d) => Some(*d),
        };
        let mut current = None;
        if let Id::Str { id, current: status } = &id {
            match status {
                None => problems.add(|| {
                    format!("{}: {kind} {} is not a live {kind} of this backend", at(), quote(id.as_str()))
                }),
                Some(row) => current = Some(*row as usize),
            }
            if let Some(&first) = repeated.get(&(i as u32)) {
                problems.add(|| {
                    format!("{}: {kind} {} appears more than once (first at [{first}])", at(), quote(id.as_str()))
                });
            }
        }
        let Some(d) = dict else { continue };
        let check = &checked[d as usize];
        let problems_start = d.checked_sub(1).map_or(0, |previous| checked[previous as usize].problems_end);
        for problem in &dict_problems[problems_start as usize..check.problems_end as usize] {
            problems.add(|| format!("{}: {problem}", at()));
        }
        let Some(row) = current else { continue };
        if problems.count != before {
            continue;
        }
        // Only the values that differ from the row's current ones are written.
        let row = &list.known[row * width..(row + 1) * width];
        let Content(columns, values) = list.dicts.content(d);
        let mut keep = 0u16;
        for (&column, &value) in columns.iter().zip(values) {
            if value.map(ByText) != row[target.known_index(column)].map(ByText) {
                keep |= column.bit();
            }
        }
        if keep == 0 {
            unchanged += 1;
            continue;
        }
        let previous = (target == Target::Volume && keep & Column::Status.bit() != 0).then(|| {
            let old = row[target.known_index(Column::Status)];
            *status_at.entry(old.map(ByText)).or_insert_with(|| {
                statuses.push(old);
                (statuses.len() - 1) as u32
            })
        });
        ready.push(Ready { entry: i as u32, dict: d, keep, previous });
    }
    Checks { ready, unchanged, statuses, dicts: checked, list }
}

// ------------------------------------------------------------ the planning

/// A map with a fast hash for short strings and small keys. The keys come from
/// the driver, which is trusted code running in the same process.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// The multiply-rotate hash of rustc (`FxHash`), with a finalizer.
#[derive(Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

const SEED: u64 = 0xf135_7aea_2e62_a9c5;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        // A multiply only carries differences upwards: the shift brings the
        // high bits down before the next word, or texts that differ at the
        // end of one word and in the next (`pair-000123`, `pair-000124`)
        // collide by the thousand. Each step stays invertible.
        let h = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
        self.hash = h ^ (h >> 29);
    }
}

/// The last 1 to 7 bytes of a text as a word, read in place (copying them
/// into a zeroed word stalled the load that followed, on every text).
#[inline]
fn tail_word(rest: &[u8]) -> u64 {
    let n = rest.len();
    if n >= 4 {
        // Two overlapping reads cover the 4 to 7 bytes.
        let low = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
        let high = u32::from_le_bytes(rest[n - 4..].try_into().expect("4 bytes"));
        u64::from(low) | u64::from(high) << 32
    } else {
        u64::from(rest[0]) | u64::from(rest[n / 2]) << 8 | u64::from(rest[n - 1]) << 16 | (n as u64) << 24
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let word = |chunk: &[u8]| u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        // Two words at a time in two lanes, so that the multiplies overlap.
        let mut pairs = bytes.chunks_exact(16);
        if pairs.len() > 0 {
            let mut other = FastHasher { hash: SEED };
            for pair in &mut pairs {
                self.add(word(&pair[..8]));
                other.add(word(&pair[8..]));
            }
            self.add(other.hash);
        }
        let mut rest = pairs.remainder();
        if rest.len() >= 8 {
            self.add(word(&rest[..8]));
            rest = &rest[8..];
        }
        if !rest.is_empty() {
            // Callers that mix texts of several lengths hash the length too
            // (`text_hash` does; `str`'s Hash adds a 0xff byte).
            self.add(tail_word(rest));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // A multiply only mixes upwards: fold the high bits into the low ones,
        // which hashbrown indexes with (the finalizer of MurmurHash3).
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// A borrowed string compared and hashed by its text.
#[derive(Clone, Copy)]
struct ByText<S>(S);

impl<S: Text> Hash for ByText<S> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.text_hash())
    }
}

impl<S: Text> PartialEq for ByText<S> {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_str(), other.0.as_str());
        std::ptr::eq(a, b) || a == b
    }
}

impl<S: Text> Eq for ByText<S> {}

/// The columns and values of a checked dict.
struct Content<'k, S>(&'k [Column], &'k [Option<S>]);

fn plan_kind<S: Text>(checks: Checks<S>, limits: Limits) -> KindPlan<S> {
    let Checks { ready, unchanged, statuses, dicts: checked, list } = checks;
    // Group the entries by their final values (the dict's content that
    // differs from the row, and the previous status), in order of first
    // appearance. An entry with the same dict, kept columns and previous
    // status as the one before it joins its group; the others are sorted by a
    // hash of their final values (see [`packed`]).
    let same = |a: &Ready, b: &Ready| {
        a.previous == b.previous
            && a.keep == b.keep
            && (a.dict == b.dict || {
                let (x, y) = (list.dicts.kept(a.dict, a.keep), list.dicts.kept(b.dict, b.keep));
                x.map(|(c, v)| (c, v.map(ByText))).eq(y.map(|(c, v)| (c, v.map(ByText))))
            })
    };
    let key = |r: &Ready| {
        // A dict's hash is the sum of its items' (see `item_hash`): the kept ones'.
        let hash = if r.keep == checked[r.dict as usize].mask {
            list.dicts.hash(r.dict)
        } else {
            u64::from(list.dicts.kept(r.dict, r.keep).fold(0u32, |sum, (c, v)| sum.wrapping_add(item_hash(c, v) as u32)))
        };
        let mut hasher = FastHasher { hash };
        hasher.write_u64(r.previous.map_or(0, |p| u64::from(p) + 1));
        hasher.finish()
    };
    // first[i]: the first entry with the final values of entry i.
    let mut first: Vec<u32> = (0..ready.len() as u32).collect();
    let mut keyed: Vec<u64> = Vec::new();
    for (i, r) in ready.iter().enumerate() {
        match i.checked_sub(1) {
            Some(b) if ready[b].dict == r.dict && ready[b].keep == r.keep && ready[b].previous == r.previous => {
                first[i] = first[b]
            }
            _ => keyed.push(packed(key(r), i)),
        }
    }
    keyed.sort_unstable();
    let mut distinct: Vec<u32> = Vec::new();
    for run in shared_hash_runs(&keyed) {
        // In index order: the first of each distinct value comes first.
        distinct.clear();
        for i in run {
            match distinct.iter().copied().find(|&f| same(&ready[f as usize], &ready[i as usize])) {
                Some(f) => first[i as usize] = f,
                None => distinct.push(i),
            }
        }
    }
    drop(keyed);
    // first[i] becomes the group of entry i, the groups numbered in order of
    // first appearance (an entry's first comes before it: its group is known).
    let mut firsts: Vec<u32> = Vec::new();
    for i in 0..first.len() {
        let f = first[i] as usize;
        first[i] = if f == i {
            firsts.push(f as u32);
            (firsts.len() - 1) as u32
        } else {
            first[f]
        };
    }
    let group_of = first;
    let mut place = vec![0u32; firsts.len()];
    for &g in &group_of {
        place[g as usize] += 1;
    }
    // The members of the set-based groups come first, each group's in input
    // order: a group's size becomes its first place in `members` (MAX: not
    // set-based) and, once they are placed, the end of its members.
    const NOT_A_SET: u32 = u32::MAX;
    let mut set_members = 0;
    for size in &mut place {
        if *size as usize >= limits.min_group {
            (*size, set_members) = (set_members, set_members + *size);
        } else {
            *size = NOT_A_SET;
        }
    }
    // Then the others, partitioned by their columns in order of first appearance.
    let mask_of = |r: &Ready| r.keep | if r.previous.is_some() { Column::PreviousStatus.bit() } else { 0 };
    let mut partition_of = vec![u32::MAX; 1 << Column::ALL.len()];
    let mut partitions: Vec<(u16, u32)> = Vec::new();
    for (r, &g) in ready.iter().zip(&group_of) {
        if place[g as usize] == NOT_A_SET {
            let mask = mask_of(r);
            let p = &mut partition_of[mask as usize];
            if *p == u32::MAX {
                *p = partitions.len() as u32;
                partitions.push((mask, 0));
            }
            partitions[*p as usize].1 += 1;
        }
    }
    let mut next_row: Vec<u32> = partitions
        .iter()
        .scan(set_members, |at, &(_, n)| {
            *at += n;
            Some(*at - n)
        })
        .collect();
    let mut members = vec![0u32; ready.len()];
    for (i, (r, &g)) in ready.iter().zip(&group_of).enumerate() {
        let next = match place[g as usize] {
            NOT_A_SET => &mut next_row[partition_of[mask_of(r) as usize] as usize],
            _ => &mut place[g as usize],
        };
        members[*next as usize] = i as u32;
        *next += 1;
    }
    drop(group_of);

    let mut sets = Vec::new();
    let mut from = 0;
    for (&first, &end) in firsts.iter().zip(&place).filter(|(_, &end)| end != NOT_A_SET) {
        let r = &ready[first as usize];
        let mut values = Vec::with_capacity(Column::ALL.len());
        if let Some(p) = r.previous {
            // previous_status is the first volume column by name.
            values.push((Column::PreviousStatus, statuses[p as usize]));
        }
        values.extend(list.dicts.kept(r.dict, r.keep));
        let size = limits.max_params.saturating_sub(values.len()).max(1);
        let (mut at, to) = (from as usize, end as usize);
        while at < to {
            let end = to.min(at.saturating_add(size));
            sets.push(SetChunk { values: values.clone(), members: at..end });
            at = end;
        }
        from = end;
    }

    let mut rows = Vec::new();
    let mut at = set_members as usize;
    for &(mask, n) in &partitions {
        let columns: Vec<Column> = Column::ALL.iter().copied().filter(|c| mask & c.bit() != 0).collect();
        let size = (limits.max_params / (columns.len() + 1)).max(1);
        let end = at + n as usize;
        for chunk in (at..end).step_by(size) {
            rows.push(RowChunk { columns: columns.clone(), members: chunk..(chunk + size).min(end) });
        }
        at = end;
    }
    KindPlan { count: ready.len(), unchanged, sets, rows, members, ready, statuses, list }
}

/// Check the driver's answer and plan its writes; every problem is reported.
pub fn plan<S: Text>(input: Input<S>, limits: Limits) -> Result<Plan<S>, Error> {
    let mut problems = Problems::default();
    let service = check_service(&input.service, &mut problems);
    let volumes = check_entries(Target::Volume, input.volumes, &mut problems);
    let groups = check_entries(Target::Group, input.groups, &mut problems);
    if problems.count > 0 {
        return Err(problems.refusal());
    }
    Ok(Plan { service, volumes: plan_kind(volumes, limits), groups: plan_kind(groups, limits) })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let updates = UpdatesRef::Dict(self.list.dicts.push(items(pairs)));
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
        let d = b.list.dicts.push(reversed);
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
        let on = list.dicts.push(pairs(vec![(Key::Str(c("replication_status")), Scalar::Str(c("enabled")))]));
        let off = list.dicts.push(pairs(vec![(Key::Str(c("replication_status")), Scalar::Str(c("disabled")))]));
        let status = list.dicts.push(pairs(vec![(Key::Str(c("status")), Scalar::Str(c("available")))]));
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
        let updates = UpdatesRef::Dict(list.dicts.push(dict));
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
            Error::ArgumentType("known_volumes['v\\x0a'] must be a tuple of 7 values, got str".into())
        );
        assert_eq!(
            error(Target::Group, "g", KnownProblem::Length(3)),
            Error::ArgumentType("known_groups['g'] must be a tuple of 2 values, got a tuple of 3".into())
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
}
