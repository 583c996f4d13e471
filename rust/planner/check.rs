//! The contract's checks of a driver's answer, and every message they give.
//! Every problem is collected; the first [`MAX_PROBLEM_LINES`] are written out.

use crate::error::{index, push, quote, vec_for, Error};

use super::contract::*;
use super::hash::{item_hash, packed, shared_hash_runs, ByText, FastMap};
use super::input::*;


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
    /// A tuple of this many values, fewer than [`Target::known_columns`]'s.
    Length(usize),
    /// Value `k` is not a str or None: the name of its type.
    ValueType(usize, &'a str),
    /// Value `k` is a str that is not valid UTF-8.
    ValueNotUtf8(usize),
}

/// `known_volumes['v1'] must be a tuple of at least 7 values, got int`, and the like.
pub fn known_row_error(target: Target, id: &str, problem: KnownProblem<'_>) -> Error {
    let at = format!("{}[{}]", target.known_name(), quote(id));
    let width = target.known_columns().len();
    match problem {
        KnownProblem::NotATuple(t) => Error::ArgumentType(format!("{at} must be a tuple of at least {width} values, got {t}")),
        KnownProblem::Length(n) => {
            Error::ArgumentType(format!("{at} must be a tuple of at least {width} values, got a tuple of {n}"))
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
pub(crate) struct Problems {
    pub(crate) lines: Vec<String>,
    pub(crate) count: usize,
}

impl Problems {
    pub(crate) fn add(&mut self, line: impl FnOnce() -> String) {
        self.count += 1;
        if self.lines.len() < MAX_PROBLEM_LINES {
            self.lines.push(line());
        }
    }

    pub(crate) fn refusal(mut self) -> Error {
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


pub(crate) fn not_allowed(target: Target, quoted_key: &str) -> String {
    let allowed: Vec<&str> = target.columns().iter().map(|c| c.name()).collect();
    format!("key {quoted_key} may not be updated; allowed: {}", allowed.join(", "))
}

/// The one problem of an item of an update, or its column and value.
pub(crate) fn check_item<S: Text>(target: Target, item: &Item<S>) -> Result<(Column, Option<S>), String> {
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
pub(crate) fn check_value<S: Text>(target: Target, column: Column, value: Option<S>) -> Result<(), String> {
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
pub(crate) fn value_problem<S: Text>(target: Target, column: Column, value: Option<S>) -> Option<String> {
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
pub(crate) struct Checked {
    /// The end of its problems in `dict_problems` (of `check_entries`), where
    /// the previous dict's end.
    pub(crate) problems_end: u32,
    /// Its columns.
    pub(crate) mask: u16,
}

/// Check dict `d`'s items, in the dict's order, making its other items
/// columns' values where they pass. A dict without problems is left sorted
/// by column.
pub(crate) fn check_dict<S: Text>(
    target: Target,
    dicts: &mut Dicts<S>,
    d: u32,
    problems: &mut Vec<String>,
) -> Result<Checked, Error> {
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
            Err(problem) => push(problems, problem)?,
            // A str subclass is read as its text: two keys may have the same.
            Ok(column) if mask & column.bit() != 0 => {
                push(problems, format!("key '{}' appears more than once", column.name()))?
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
    Ok(Checked { problems_end: index(problems.len())?, mask })
}

/// An entry that passed every check and has something to write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ready {
    pub(crate) entry: u32,
    pub(crate) dict: u32,
    /// The columns of the dict whose values differ from the row's: the ones written.
    pub(crate) keep: u16,
    /// When the update changes the volume's status: the old one, as an index
    /// into [`Checks::statuses`] (each distinct status once).
    pub(crate) previous: Option<u32>,
}

pub(crate) fn check_service<S: Text>(service: &Service<S>, problems: &mut Problems) -> Vec<(Column, Option<S>)> {
    let items = match service {
        Service::Null => return Vec::new(),
        Service::NotADict(t) => {
            problems.add(|| format!("service_update: expected a dict or None, got {}", t.as_str()));
            return Vec::new();
        }
        Service::Dict(items) => items,
    };
    let mut out = Vec::with_capacity(items.len());
    let mut mask = 0u16;
    for item in items {
        match check_item(Target::Service, item) {
            // A str subclass is read as its text: two keys may have the same.
            Ok((column, _)) if mask & column.bit() != 0 => {
                problems.add(|| format!("service_update: key '{}' appears more than once", column.name()))
            }
            Ok(pair) => {
                mask |= pair.0.bit();
                out.push(pair)
            }
            Err(problem) => problems.add(|| format!("service_update: {problem}")),
        }
    }
    out
}

/// The entries whose id appeared earlier in the list, each with the index of
/// that first appearance. Only ids whose hashes share a high half (see
/// [`packed`]) are compared by text.
pub(crate) fn repeated_ids<S: Text>(entries: &[Entry<S>]) -> Result<FastMap<u32, u32>, Error> {
    let mut keyed = vec_for(entries.len())?;
    for (i, entry) in entries.iter().enumerate() {
        if let Some(id) = entry.str_id() {
            keyed.push(packed(id.text_hash(), index(i)?));
        }
    }
    keyed.sort_unstable();
    let mut repeated = FastMap::default();
    let mut first: FastMap<ByText<S>, u32> = FastMap::default();
    for run in shared_hash_runs(&keyed) {
        // In index order: the first of each text is its first appearance.
        first.clear();
        for i in run {
            let Some(id) = entries[i as usize].str_id() else { continue };
            first.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
            let j = *first.entry(ByText(id)).or_insert(i);
            if j != i {
                repeated.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
                repeated.insert(i, j);
            }
        }
    }
    Ok(repeated)
}

/// What the checks of a list leave for the planning.
pub(crate) struct Checks<S> {
    pub(crate) ready: Vec<Ready>,
    /// The entries that passed and change nothing.
    pub(crate) unchanged: usize,
    pub(crate) statuses: Vec<Option<S>>,
    pub(crate) dicts: Vec<Checked>,
    pub(crate) list: List<S>,
}

pub(crate) fn check_entries<S: Text>(
    target: Target,
    entries: Entries<S>,
    problems: &mut Problems,
) -> Result<Checks<S>, Error> {
    let list_name = target.list_name();
    let id_key = target.id_key();
    let kind = target.name();
    let mut list = match entries {
        Entries::NotAList(t) => {
            problems.add(|| format!("{list_name}: expected a list, got {}", t.as_str()));
            return Ok(Checks {
                ready: Vec::new(),
                unchanged: 0,
                statuses: Vec::new(),
                dicts: Vec::new(),
                list: List::default(),
            });
        }
        Entries::List(list) => list,
    };
    let mut dict_problems = Vec::new();
    let mut checked: Vec<Checked> = vec_for(list.dicts.len())?;
    for d in 0..index(list.dicts.len())? {
        checked.push(check_dict(target, &mut list.dicts, d, &mut dict_problems)?);
    }
    // The previous statuses, each distinct one once.
    let mut statuses: Vec<Option<S>> = Vec::new();
    let mut status_at: FastMap<Option<ByText<S>>, u32> = FastMap::default();
    let width = target.known_columns().len();
    let mut unchanged = 0;
    let repeated = if list.ids_distinct { FastMap::default() } else { repeated_ids(&list.entries)? };
    let mut ready = vec_for(list.entries.len())?;
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
        let previous = if target == Target::Volume && keep & Column::Status.bit() != 0 {
            let old = row[target.known_index(Column::Status)];
            status_at.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
            Some(match status_at.entry(old.map(ByText)) {
                std::collections::hash_map::Entry::Occupied(at) => *at.get(),
                std::collections::hash_map::Entry::Vacant(at) => {
                    push(&mut statuses, old)?;
                    *at.insert(index(statuses.len() - 1)?)
                }
            })
        } else {
            None
        };
        ready.push(Ready { entry: index(i)?, dict: d, keep, previous });
    }
    Ok(Checks { ready, unchanged, statuses, dicts: checked, list })
}

