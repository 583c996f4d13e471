//! The driver's answer as the binding found it: strings borrowed through
//! [`Text`], anything else reduced to its type name. Built by the binding (or
//! by tests), read by the checks.

use std::ops::Range;

use super::contract::Column;
use super::hash::{item_hash, text_hash};
use crate::error::{index, push, Error};

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
    pub(crate) fn str_id(&self) -> Option<S> {
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
    pub(crate) columns: Vec<Column>,
    pub(crate) values: Vec<Option<S>>,
    /// The items that are not a column's value (yet), by position: their
    /// places in `columns` and `values` hold placeholders until `check_dict`.
    pub(crate) others: Vec<(u32, Item<S>)>,
    pub(crate) ends: Vec<u32>,
    /// The low halves of the hashes: a sum's low half needs only those of
    /// its terms, so the items that only `check_dict` makes columns join it.
    pub(crate) hashes: Vec<u32>,
    /// The hash of the dict being read.
    pub(crate) hash: u32,
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
    pub fn push(&mut self, items: impl IntoIterator<Item = Item<S>>) -> Result<u32, Error> {
        for item in items {
            self.item(item)?;
        }
        self.end()
    }

    /// Add an item to the dict being read; `end` closes it.
    pub fn item(&mut self, item: Item<S>) -> Result<(), Error> {
        match item {
            Item::Column(column, value) => self.column(column, value, item_hash(column, value)),
            Item::Other(_) => {
                push(&mut self.others, (index(self.columns.len())?, item))?;
                push(&mut self.columns, Column::ActiveBackendId)?;
                push(&mut self.values, None)
            }
        }
    }

    /// Add `Item::Column(column, value)`, whose [`item_hash`] the caller had
    /// at hand.
    #[inline]
    pub fn column(&mut self, column: Column, value: Option<S>, hash: u64) -> Result<(), Error> {
        // A sum: the same items in any order give the same hash.
        self.hash = self.hash.wrapping_add(hash as u32);
        push(&mut self.columns, column)?;
        push(&mut self.values, value)
    }

    pub fn end(&mut self) -> Result<u32, Error> {
        push(&mut self.ends, index(self.columns.len())?)?;
        push(&mut self.hashes, std::mem::take(&mut self.hash))?;
        index(self.ends.len() - 1)
    }
}

impl<S> Dicts<S> {
    /// Make room for `dicts` more dicts with `items` items in all.
    pub fn reserve(&mut self, dicts: usize, items: usize) -> Result<(), Error> {
        let failed = |_| Error::OutOfMemory;
        self.ends.try_reserve(dicts).map_err(failed)?;
        self.hashes.try_reserve(dicts).map_err(failed)?;
        self.columns.try_reserve(items).map_err(failed)?;
        self.values.try_reserve(items).map_err(failed)
    }

    pub(crate) fn range(&self, index: u32) -> Range<usize> {
        let i = index as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        start..self.ends[i] as usize
    }

    /// The columns and values of a checked dict, sorted by column.
    pub(crate) fn content(&self, index: u32) -> Content<'_, S> {
        let range = self.range(index);
        Content(&self.columns[range.clone()], &self.values[range])
    }

    /// The hash of a dict's columns and values.
    pub(crate) fn hash(&self, index: u32) -> u64 {
        u64::from(self.hashes[index as usize])
    }

    /// The items of a checked dict whose columns are in `keep`, sorted by column.
    pub(crate) fn kept(&self, index: u32, keep: u16) -> impl Iterator<Item = (Column, Option<S>)> + '_
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

/// The columns and values of a checked dict.
pub(crate) struct Content<'k, S>(pub(crate) &'k [Column], pub(crate) &'k [Option<S>]);

