//! Reading the driver's answer into the planner's input, with the GIL held.
//!
//! The answer is read as data, never through the driver's own methods: lists
//! and tuples by their stored items, dicts by their stored items (as
//! `dict.items(d)` gives them), strings by their text, subclasses included
//! (see the driver guide). Every object met is a strong reference, and every
//! str whose text the plan uses is held for the whole call (see `held`).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::error::{index, push, Error};
use crate::held::{self, DictItems, Held, Txt};
use crate::planner::{self, Column, Entries, Entry, Id, Item, Key, Scalar, Service, Target, Text, UpdatesRef};
use crate::to_py;

/// How many keys ahead of the last match the map of live rows is searched in
/// its own order before a hash lookup (see `ReadList::next_known`).
const KNOWN_LOOKAHEAD: usize = 4;

fn no_memory(_: Error) -> PyErr {
    to_py(Error::OutOfMemory)
}

/// What a call reads and keeps: the held objects and the names it knows.
pub struct Reader<'py> {
    pub py: Python<'py>,
    pub held: Held<'py>,
    /// `__name__` of the types met, by the address of the type (held).
    type_names: planner::FastMap<usize, Txt>,
    /// The names of the columns, interned: drivers' keys usually are these.
    pub columns: Vec<Bound<'py, PyString>>,
    /// The last value of each column (see `column_value`).
    recent: [Option<(usize, Option<Txt>, u64)>; Column::ALL.len()],
    /// Set where Python code may have run (a lookup calling `__eq__`, an
    /// exception raised): it could have changed the caller's dicts.
    python_ran: bool,
}

impl<'py> Reader<'py> {
    pub fn new(py: Python<'py>) -> PyResult<Self> {
        let columns = Column::ALL.iter().map(|c| held::interned(py, c.name())).collect::<PyResult<_>>()?;
        Ok(Reader {
            py,
            held: Held::new(),
            type_names: planner::FastMap::default(),
            columns,
            recent: [None; Column::ALL.len()],
            python_ran: false,
        })
    }

    /// The text of a str (a subclass: its text), held; None if it is not
    /// valid UTF-8 (the failed encoding raised, then cleared, an exception).
    #[inline(always)]
    fn text(&mut self, value: &Bound<'py, PyString>) -> PyResult<Option<Txt>> {
        let text = self.held.text(value)?;
        self.python_ran |= text.is_none();
        Ok(text)
    }

    /// `type(value).__name__`, as the type itself has it.
    fn type_name(&mut self, value: &Bound<'py, PyAny>) -> PyResult<Txt> {
        let kind = value.get_type();
        let address = kind.as_ptr() as usize;
        if let Some(name) = self.type_names.get(&address) {
            return Ok(*name);
        }
        self.held.hold(kind.as_any())?;
        let name = match kind.name() {
            Ok(name) => name,
            Err(_) => held::new_str(self.py, "?")?,
        };
        let name = match self.text(&name)? {
            Some(t) => t,
            None => {
                let lossy = held::new_str(self.py, &name.to_string_lossy())?;
                self.text(&lossy)?.ok_or_else(|| to_py(Error::OutOfMemory))?
            }
        };
        self.type_names.try_reserve(1).map_err(|_| to_py(Error::OutOfMemory))?;
        self.type_names.insert(address, name);
        Ok(name)
    }

    fn key(&mut self, key: &Bound<'py, PyAny>) -> PyResult<Key<Txt>> {
        let Ok(s) = key.cast::<PyString>() else { return Ok(Key::Other(self.type_name(key)?)) };
        if let Some(i) = self.columns.iter().position(|c| c.is(s)) {
            return Ok(Key::Column(Column::ALL[i]));
        }
        Ok(match self.text(s)? {
            Some(t) => match Column::named(t.as_str()) {
                Some(column) => Key::Column(column),
                None => Key::Str(t),
            },
            None => Key::NotUtf8(held::code_points(s)?),
        })
    }

    fn scalar(&mut self, value: &Bound<'py, PyAny>) -> PyResult<Scalar<Txt>> {
        if value.is_none() {
            return Ok(Scalar::Null);
        }
        Ok(match value.cast::<PyString>() {
            Ok(s) => self.text(s)?.map_or(Scalar::NotUtf8, Scalar::Str),
            Err(_) => Scalar::Other(self.type_name(value)?),
        })
    }

    fn item(&mut self, key: &Bound<'py, PyAny>, value: &Bound<'py, PyAny>) -> PyResult<Item<Txt>> {
        Ok(Item::new(self.key(key)?, self.scalar(value)?))
    }

    /// The value of column `i` if it is None or a str of valid UTF-8, with
    /// the item's [`planner::item_hash`]. Drivers give many rows the same str
    /// object (`"enabled"`): the last one of each column is remembered by
    /// address (it is held, so the address stays its own) and read once.
    #[inline]
    fn column_value(&mut self, i: usize, value: &Bound<'py, PyAny>) -> PyResult<Option<(Option<Txt>, u64)>> {
        let address = value.as_ptr() as usize;
        if let Some((a, text, hash)) = self.recent[i] {
            if a == address {
                return Ok(Some((text, hash)));
            }
        }
        let text = if value.is_none() {
            None
        } else {
            let Ok(s) = value.cast::<PyString>() else { return Ok(None) };
            let Some(t) = self.text(s)? else { return Ok(None) };
            Some(t)
        };
        let hash = planner::item_hash(Column::ALL[i], text);
        self.recent[i] = Some((address, text, hash));
        Ok(Some((text, hash)))
    }

    /// `service_update`: None, or a dict's stored items.
    pub fn service(&mut self, service: &Bound<'py, PyAny>) -> PyResult<Service<Txt>> {
        if service.is_none() {
            return Ok(Service::Null);
        }
        let Ok(dict) = service.cast::<PyDict>() else { return Ok(Service::NotADict(self.type_name(service)?)) };
        let mut items = Vec::new();
        for pair in DictItems::new(dict) {
            let (key, value) = pair?;
            let item = self.item(&key, &value)?;
            push(&mut items, item).map_err(no_memory)?;
        }
        Ok(Service::Dict(items))
    }

    /// `volume_updates` or `group_updates`: a list's or a tuple's stored items.
    pub fn entries(
        &mut self,
        target: Target,
        list: &Bound<'py, PyAny>,
        known: &Bound<'py, PyDict>,
    ) -> PyResult<Entries<Txt>> {
        let len = |list: &Bound<'py, PyAny>| match (list.cast::<PyList>(), list.cast::<PyTuple>()) {
            (Ok(l), _) => l.len(),
            (_, Ok(t)) => t.len(),
            _ => 0,
        };
        let item = |list: &Bound<'py, PyAny>, i: usize| match (list.cast::<PyList>(), list.cast::<PyTuple>()) {
            (Ok(l), _) => l.get_item(i),
            (_, Ok(t)) => t.get_item(i),
            _ => unreachable!("a list or a tuple"),
        };
        if list.cast::<PyList>().is_err() && list.cast::<PyTuple>().is_err() {
            return Ok(Entries::NotAList(self.type_name(list)?));
        }
        let n = len(list);
        self.held.reserve(n.saturating_mul(2))?;
        let mut read = ReadList::new(self.py, target, known, n)?;
        self.python_ran = false;
        // The size is read again at each step: Python code run by a lookup
        // may shrink the list (a list iterator does the same).
        let mut i = 0;
        while i < len(list) {
            read.entry(self, item(list, i)?)?;
            i += 1;
        }
        read.out.ids_distinct = read.ids_in_order && !self.python_ran;
        Ok(Entries::List(read.out))
    }
}

/// Reads one list of the driver's answer.
struct ReadList<'k, 'py> {
    target: Target,
    /// The number of entries.
    len: usize,
    known: &'k Bound<'py, PyDict>,
    id_key: Bound<'py, PyString>,
    updates_key: Bound<'py, PyString>,
    out: planner::List<Txt>,
    /// Drivers share one updates dict between many entries: each is read
    /// once. The dicts are held, so no address is reused.
    dict_at: planner::FastMap<usize, u32>,
    last_dict: Option<(usize, u32)>,
    /// Where the last id was found in the map of live rows, in its order.
    known_pos: DictCursor,
    /// Every str id so far is an exact str found by `next_known`.
    ids_in_order: bool,
}

/// A position in the map of live rows, for `next_known`.
#[derive(Clone, Copy, Default)]
struct DictCursor(usize);

impl<'k, 'py> ReadList<'k, 'py> {
    fn new(py: Python<'py>, target: Target, known: &'k Bound<'py, PyDict>, len: usize) -> PyResult<Self> {
        let mut out = planner::List::default();
        out.entries.try_reserve(len).map_err(|_| to_py(Error::OutOfMemory))?;
        Ok(ReadList {
            target,
            len,
            known,
            id_key: held::interned(py, target.id_key())?,
            updates_key: held::interned(py, "updates")?,
            out,
            dict_at: planner::FastMap::default(),
            last_dict: None,
            known_pos: DictCursor::default(),
            ids_in_order: true,
        })
    }

    fn push(&mut self, entry: Entry<Txt>) -> PyResult<()> {
        push(&mut self.out.entries, entry).map_err(no_memory)
    }

    /// Read one entry of the list.
    fn entry(&mut self, x: &mut Reader<'py>, item: Bound<'py, PyAny>) -> PyResult<()> {
        let Ok(entry) = item.cast::<PyDict>() else {
            let name = x.type_name(&item)?;
            return self.push(Entry::not_a_dict(name));
        };
        // The usual entry: two items, keyed by the interned literals (as
        // drivers write them).
        if entry.len() == 2 {
            let mut items = DictItems::new(entry);
            if let (Some(Ok((k1, v1))), Some(Ok((k2, v2)))) = (items.next(), items.next()) {
                if k1.is(&self.id_key) && k2.is(&self.updates_key) {
                    return self.dict_entry(x, &v1, &v2);
                }
                if k2.is(&self.id_key) && k1.is(&self.updates_key) {
                    return self.dict_entry(x, &v2, &v1);
                }
            }
        }
        self.odd_entry(x, entry)
    }

    /// Any other dict: its keys are told by their text, in its order; the
    /// first id and the first updates count, any other key is unexpected.
    fn odd_entry(&mut self, x: &mut Reader<'py>, entry: &Bound<'py, PyDict>) -> PyResult<()> {
        let (mut id, mut updates, mut unexpected) = (None, None, Vec::new());
        for pair in DictItems::new(entry) {
            let (key, value) = pair?;
            let text = match key.cast::<PyString>() {
                Ok(k) => x.text(k)?,
                Err(_) => None,
            };
            match text.as_ref().map(Text::as_str) {
                Some(t) if t == self.target.id_key() && id.is_none() => id = Some(value),
                Some("updates") if updates.is_none() => updates = Some(value),
                _ => {
                    let key = x.key(&key)?;
                    push(&mut unexpected, key).map_err(no_memory)?;
                }
            }
        }
        match (id, updates) {
            (Some(id), Some(updates)) if unexpected.is_empty() => self.dict_entry(x, &id, &updates),
            (id, updates) => {
                let shape =
                    planner::BadShape { missing_id: id.is_none(), missing_updates: updates.is_none(), unexpected };
                self.push(Entry::bad_shape(shape))
            }
        }
    }

    /// An entry with its id and updates. The updates dict is read first (a
    /// lookup of the id in the map of live rows may run Python code).
    fn dict_entry(&mut self, x: &mut Reader<'py>, id: &Bound<'py, PyAny>, updates: &Bound<'py, PyAny>) -> PyResult<()> {
        let updates = match updates.cast::<PyDict>() {
            Err(_) => UpdatesRef::Other(x.type_name(updates)?),
            Ok(d) => UpdatesRef::Dict(self.dict(x, d)?),
        };
        let id = match id.cast::<PyString>() {
            Err(_) => Id::Other(x.type_name(id)?),
            Ok(s) => match x.text(s)? {
                None => Id::NotUtf8,
                Some(t) => {
                    // Only an exact str can be the map's own key object.
                    self.ids_in_order &= held::is_exact_str(s.as_any());
                    Id::Str { id: t, current: self.current(x, s, t)? }
                }
            },
        };
        self.push(Entry::dict(id, updates))
    }

    /// The row in `out.known` of the current values that the caller's map of
    /// live rows holds for `id`, if any.
    fn current(&mut self, x: &mut Reader<'py>, id: &Bound<'py, PyString>, text: Txt) -> PyResult<Option<u32>> {
        let row = match self.next_known(id)? {
            Some(row) => row,
            None => {
                self.ids_in_order = false;
                // A lookup by the id's text (a str subclass: a str of its text).
                let key = if held::is_exact_str(id.as_any()) { id.clone() } else { held::new_str(x.py, text.as_str())? };
                x.python_ran = true; // a key of the map may compare itself in Python
                match self.known.get_item(&key)? {
                    Some(row) => row,
                    None => return Ok(None),
                }
            }
        };
        let fail = |problem: planner::KnownProblem<'_>| {
            Err(to_py(planner::known_row_error(self.target, text.as_str(), problem)))
        };
        let Ok(tuple) = row.cast::<PyTuple>() else {
            let name = x.type_name(&row)?;
            return fail(planner::KnownProblem::NotATuple(name.as_str()));
        };
        // The first `width` values are the row's; more may follow (the hook hands over its
        // records, whose first columns are these).
        let width = self.target.known_columns().len();
        if tuple.len() < width {
            return fail(planner::KnownProblem::Length(tuple.len()));
        }
        // The tuple is held: its items live as long, and their texts with them.
        let held_tuple = x.held.hold(tuple.as_any())?;
        let index = index(self.out.known.len() / width).map_err(no_memory)?;
        for k in 0..width {
            let value = tuple.get_item(k)?;
            let text = if value.is_none() {
                None
            } else if value.cast::<PyString>().is_ok() {
                match x.held.tuple_item_text(held_tuple, k) {
                    Some(t) => Some(t),
                    None => {
                        x.python_ran = true;
                        return fail(planner::KnownProblem::ValueNotUtf8(k));
                    }
                }
            } else {
                let name = x.type_name(&value)?;
                return fail(planner::KnownProblem::ValueType(k, name.as_str()));
            };
            push(&mut self.out.known, text).map_err(no_memory)?;
        }
        Ok(Some(index))
    }

    /// The row of `id` if `id` is, as an object, one of the next keys of the
    /// map of live rows in its order. Drivers answer in the order of the
    /// volumes they were given, which is the order the hook built the map in:
    /// this finds almost every id without a hash lookup, which in a map of
    /// 100,000 rows is a cache miss. Only the same object counts, so a match
    /// is the map's own entry for `id`.
    fn next_known(&mut self, id: &Bound<'py, PyString>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut items = DictItems::from_position(self.known, self.known_pos.0);
        for _ in 0..KNOWN_LOOKAHEAD {
            let Some(pair) = items.next() else { return Ok(None) };
            let (key, value) = pair?;
            if key.is(id) {
                self.known_pos = DictCursor(items.position());
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    /// The index of an updates dict in the list's dicts, reading it if new.
    fn dict(&mut self, x: &mut Reader<'py>, dict: &Bound<'py, PyDict>) -> PyResult<u32> {
        // Referred to by its entry and by `dict` only: no other entry shares it.
        if held::refcount(dict.as_any()) <= 2 {
            return self.read_dict(x, dict);
        }
        let address = dict.as_ptr() as usize;
        if let Some((a, i)) = self.last_dict {
            if a == address {
                return Ok(i);
            }
        }
        let index = match self.dict_at.get(&address) {
            Some(&i) => i,
            None => {
                x.held.hold(dict.as_any())?;
                let i = self.read_dict(x, dict)?;
                self.dict_at.try_reserve(1).map_err(|_| to_py(Error::OutOfMemory))?;
                self.dict_at.insert(address, i);
                i
            }
        };
        self.last_dict = Some((address, index));
        Ok(index)
    }

    fn read_dict(&mut self, x: &mut Reader<'py>, dict: &Bound<'py, PyDict>) -> PyResult<u32> {
        if self.out.dicts.is_empty() {
            // Guess that the other entries look like this one: growing these
            // by doubling copies them and touches fresh memory each time.
            let rest = self.len.saturating_sub(self.out.entries.len());
            let per_dict = dict.len().min(8);
            self.out.dicts.reserve(rest, rest.saturating_mul(per_dict)).map_err(no_memory)?;
            x.held.reserve(rest.saturating_mul(per_dict + 1))?;
        }
        for pair in DictItems::new(dict) {
            let (key, value) = pair?;
            // The usual item, inline: an interned column name with a str or None.
            if let Some(i) = x.columns.iter().position(|c| c.is(&key)) {
                if let Some((value, hash)) = x.column_value(i, &value)? {
                    self.out.dicts.column(Column::ALL[i], value, hash).map_err(no_memory)?;
                    continue;
                }
            }
            let item = x.item(&key, &value)?;
            self.out.dicts.item(item).map_err(no_memory)?;
        }
        self.out.dicts.end().map_err(no_memory)
    }
}
