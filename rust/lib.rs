//! The Python binding of the native core: the module, its exports and the one
//! conversion of core errors to Python exceptions. The logic lives in plain
//! Rust modules without pyo3 types, so `cargo test` covers it.

pub mod error;
pub mod planner;
pub mod validate;

use std::ptr::NonNull;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::{ffi, intern, Borrowed, PyTypeInfo};

use planner::{Column, Entries, Entry, Id, Item, Key, Scalar, Service, Target, UpdatesRef};

pyo3::import_exception!(cinder_promote.errors, InvalidValue);
pyo3::import_exception!(cinder_promote.errors, DriverAnswerError);

/// The one conversion of core errors to Python exceptions.
fn to_py(err: error::Error) -> PyErr {
    match err {
        error::Error::InvalidValue(message) => InvalidValue::new_err(message),
        error::Error::ArgumentValue(message) => PyValueError::new_err(message),
        error::Error::ArgumentType(message) => PyTypeError::new_err(message),
        error::Error::DriverAnswer { message, details } => DriverAnswerError::new_err((message, details)),
    }
}

/// Command lines may carry undecodable bytes (Python keeps them as lone
/// surrogates); they are a user error, not a crash.
fn utf8<'a>(value: &'a Bound<'_, PyString>, what: &str) -> PyResult<std::borrow::Cow<'a, str>> {
    value
        .to_cow()
        .map_err(|_| InvalidValue::new_err(format!("invalid {what}: it is not valid UTF-8")))
}

type HostTuple = (String, Option<String>, Option<String>);

fn host_tuple(parts: validate::HostParts) -> HostTuple {
    (parts.host, parts.backend, parts.pool)
}

/// Check a replication status; `updating` only when `allow_fence` is true.
#[pyfunction]
#[pyo3(signature = (value, allow_fence=false))]
fn check_replication_status(value: &Bound<'_, PyString>, allow_fence: bool) -> PyResult<String> {
    let value = utf8(value, "replication status")?;
    validate::check_replication_status(&value, allow_fence).map_err(to_py)?;
    Ok(value.into_owned())
}

/// Split `host@backend#pool` into its parts, checking it.
#[pyfunction]
fn split_host(value: &Bound<'_, PyString>) -> PyResult<HostTuple> {
    validate::split_host(&utf8(value, "host")?).map(host_tuple).map_err(to_py)
}

/// Check a volume service host as given to `--backend-host` (no pool).
#[pyfunction]
fn check_backend_host(value: &Bound<'_, PyString>) -> PyResult<HostTuple> {
    validate::check_backend_host(&utf8(value, "host")?).map(host_tuple).map_err(to_py)
}

// ------------------------------------------------------------- the planner

/// The items of a dict as borrowed references: no reference counting and no
/// size check per item. The caller holds the GIL, and holds the dict and the
/// item where it runs Python code that could change the dict (reading strs
/// and types runs none).
fn dict_items<'a, 'py>(
    dict: &'a Bound<'py, PyDict>,
) -> impl Iterator<Item = (Borrowed<'a, 'py, PyAny>, Borrowed<'a, 'py, PyAny>)> + 'a {
    let py = dict.py();
    let mut pos: ffi::Py_ssize_t = 0;
    std::iter::from_fn(move || {
        let (mut key, mut value) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: `dict` is a live dict and the GIL is held; PyDict_Next hands
        // out borrowed references that live as long as the unchanged dict.
        if unsafe { ffi::PyDict_Next(dict.as_ptr(), &mut pos, &mut key, &mut value) } == 0 {
            return None;
        }
        // SAFETY: non-null borrowed references from the dict, see above.
        Some(unsafe { (Borrowed::from_ptr(py, key), Borrowed::from_ptr(py, value)) })
    })
}

/// `value` as a `T` (a dict or a str). An exact one is told by reading its
/// type; pyo3's checks call into Python on abi3, and its exact cast counts
/// references to the type object.
fn cast<'a, 'py, T: PyTypeInfo>(value: &'a Bound<'py, PyAny>) -> Option<&'a Bound<'py, T>> {
    if T::is_exact_type_of(value) {
        // SAFETY: the type was checked just above.
        Some(unsafe { value.cast_unchecked() })
    } else {
        value.cast::<T>().ok()
    }
}

/// How many keys ahead of the last match the map of live rows is searched in
/// its own order before a hash lookup (see `ReadList::next_known`).
const KNOWN_LOOKAHEAD: usize = 4;

/// A string of the driver's answer: its UTF-8 text and its index in
/// [`Kept`], which holds a strong reference to it. (Kept small: the planner's
/// input holds one per item and per entry.)
#[derive(Clone, Copy)]
struct Txt {
    ptr: NonNull<u8>,
    len: u32,
    object: u32,
}

// SAFETY: a `Txt` is a shared reference to the immutable UTF-8 buffer of a str
// that `Kept` keeps alive (see `Extract::text`).
unsafe impl Send for Txt {}
unsafe impl Sync for Txt {}

impl Txt {
    /// `object` of a text whose str another kept object holds (a value of a
    /// kept tuple): the plan makes a new str of it.
    const HELD: u32 = u32::MAX;

    /// The text of a str held alive by a kept object (see `HELD`).
    fn held(text: &str) -> Txt {
        Txt { ptr: NonNull::from(text.as_bytes()).cast(), len: text.len() as u32, object: Txt::HELD }
    }
}

impl planner::Text for Txt {
    fn as_str(&self) -> &str {
        // SAFETY: `ptr` and `len` come from a `&str` (see `Extract::text`).
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.ptr.as_ptr(), self.len as usize)) }
    }
}

/// The strong references that keep the driver's strs (and the dicts and types
/// met) alive for the whole call. The plan hands each object back the first
/// time with this reference: no second one is counted for it, nor this one
/// dropped later, each a write to an object long out of the cache.
struct Kept<'py> {
    py: Python<'py>,
    objects: Vec<NonNull<ffi::PyObject>>,
    handed: Vec<bool>,
}

impl<'py> Kept<'py> {
    fn push(&mut self, object: &Bound<'py, PyAny>) -> u32 {
        // SAFETY: `clone().into_ptr()` is a new strong reference, released in `drop` or handed over.
        self.objects.push(unsafe { NonNull::new_unchecked(object.clone().into_ptr()) });
        self.handed.push(false);
        u32::try_from(self.objects.len() - 1).expect("fewer than 2**32 objects")
    }

    fn reserve(&mut self, n: usize) {
        self.objects.reserve(n);
        self.handed.reserve(n);
    }

    /// Object `i`, with this reference the first time and a new one after.
    fn hand(&mut self, i: u32) -> Bound<'py, PyAny> {
        let i = i as usize;
        let object = self.objects[i].as_ptr();
        // SAFETY: the object is alive: held here, or by what it was handed to
        // (the plan being built, which lives until the call returns).
        unsafe {
            if std::mem::replace(&mut self.handed[i], true) {
                Bound::from_borrowed_ptr(self.py, object)
            } else {
                Bound::from_owned_ptr(self.py, object)
            }
        }
    }
}

impl Drop for Kept<'_> {
    fn drop(&mut self) {
        for (object, &handed) in self.objects.iter().zip(&self.handed) {
            if !handed {
                // SAFETY: the GIL is held (`py`); this releases the reference `push` took.
                unsafe { ffi::Py_DecRef(object.as_ptr()) };
            }
        }
    }
}

/// Reads the driver's answer into the planner's input while holding the GIL.
/// Every str it borrows is kept alive in `kept` for the whole call, so the
/// borrowed text stays valid while the GIL is released, even if another thread
/// empties the driver's dicts meanwhile.
struct Extract<'py> {
    py: Python<'py>,
    kept: Kept<'py>,
    /// `__name__` of the types met, by the address of the type (kept alive).
    type_names: planner::FastMap<usize, Txt>,
    /// The names of the columns, interned: drivers' keys usually are these.
    columns: Vec<Bound<'py, PyString>>,
    /// The last value of each column (see `column_value`).
    recent: [Option<(usize, Option<Txt>, u64)>; Column::ALL.len()],
    /// Set where Python code may run (a lookup calling `__eq__`, or an
    /// allocation collecting garbage): it could change the caller's dicts.
    python_ran: bool,
}

impl<'py> Extract<'py> {
    fn keep(&mut self, object: &Bound<'py, PyAny>) -> u32 {
        self.kept.push(object)
    }

    /// The text of a str, or None if it has lone surrogates. (Inlined: a
    /// `Txt` returned from a call cost a store-forwarding stall.)
    #[inline(always)]
    fn text(&mut self, value: &Bound<'py, PyString>) -> Option<Txt> {
        let text = value.to_str().ok()?;
        // SAFETY: a str is immutable and its UTF-8 buffer (its own data, or the
        // cache that PyUnicode_AsUTF8AndSize fills) lives as long as the str.
        // `keep` holds a strong reference in `self.kept` (or the plan it is
        // handed to) that outlives every `Txt`: they all die in `plan_updates`.
        Some(Txt {
            ptr: NonNull::from(text.as_bytes()).cast(),
            len: u32::try_from(text.len()).expect("a str shorter than 4 GiB"),
            object: self.keep(value.as_any()),
        })
    }

    /// `type(value).__name__`.
    fn type_name(&mut self, value: &Bound<'py, PyAny>) -> Txt {
        let py = self.py;
        let kind = value.get_type();
        let address = kind.as_ptr() as usize;
        if let Some(name) = self.type_names.get(&address) {
            return *name;
        }
        self.keep(kind.as_any());
        let name = kind.name().unwrap_or_else(|_| PyString::new(py, "?"));
        let name = match self.text(&name) {
            Some(t) => t,
            None => {
                let lossy = PyString::new(py, &name.to_string_lossy());
                self.text(&lossy).expect("valid UTF-8")
            }
        };
        self.type_names.insert(address, name);
        name
    }

    /// The code points of a str that is not valid UTF-8, for quoting.
    fn code_points(&mut self, value: &Bound<'py, PyString>) -> PyResult<Box<[u32]>> {
        self.python_ran = true;
        let str_type = self.py.get_type::<PyString>();
        let encoded = str_type.call_method1(intern!(self.py, "encode"), (value, "utf-32-le", "surrogatepass"))?;
        let bytes = encoded.cast::<PyBytes>()?.as_bytes();
        Ok(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    fn key(&mut self, key: &Bound<'py, PyAny>) -> PyResult<Key<Txt>> {
        let Ok(s) = key.cast::<PyString>() else { return Ok(Key::Other(self.type_name(key))) };
        if let Some(i) = self.columns.iter().position(|c| c.is(s)) {
            return Ok(Key::Column(Column::ALL[i]));
        }
        Ok(match s.to_str().ok().map(Column::named) {
            Some(Some(column)) => Key::Column(column),
            Some(None) => Key::Str(self.text(s).expect("valid UTF-8")),
            None => Key::NotUtf8(self.code_points(s)?),
        })
    }

    fn scalar(&mut self, value: &Bound<'py, PyAny>) -> Scalar<Txt> {
        if value.is_none() {
            return Scalar::Null;
        }
        match value.cast::<PyString>() {
            Ok(s) => self.text(s).map_or(Scalar::NotUtf8, Scalar::Str),
            Err(_) => Scalar::Other(self.type_name(value)),
        }
    }

    fn item(&mut self, key: &Bound<'py, PyAny>, value: &Bound<'py, PyAny>) -> PyResult<Item<Txt>> {
        Ok(Item::new(self.key(key)?, self.scalar(value)))
    }

    /// The value of column `i` if it is None or a str of valid UTF-8, with
    /// the item's [`planner::item_hash`]. Drivers give many rows the same str
    /// object (`"enabled"`): the last one of each column is remembered by
    /// address (it is kept alive, so the address stays its own) and read once.
    #[inline]
    fn column_value(&mut self, i: usize, value: &Bound<'py, PyAny>) -> Option<(Option<Txt>, u64)> {
        let address = value.as_ptr() as usize;
        if let Some((a, text, hash)) = self.recent[i] {
            if a == address {
                return Some((text, hash));
            }
        }
        let text = if value.is_none() { None } else { Some(self.text(cast::<PyString>(value)?)?) };
        let hash = planner::item_hash(Column::ALL[i], text);
        self.recent[i] = Some((address, text, hash));
        Some((text, hash))
    }

    fn service(&mut self, service: &Bound<'py, PyAny>) -> PyResult<Service<Txt>> {
        if service.is_none() {
            return Ok(Service::Null);
        }
        Ok(match service.cast::<PyDict>() {
            Ok(d) => Service::Dict(d.iter().map(|(k, v)| self.item(&k, &v)).collect::<PyResult<_>>()?),
            Err(_) => Service::NotADict(self.type_name(service)),
        })
    }

    fn entries(
        &mut self,
        target: Target,
        list: &Bound<'py, PyAny>,
        known: &Bound<'py, PyDict>,
    ) -> PyResult<Entries<Txt>> {
        type Size = unsafe extern "C" fn(*mut ffi::PyObject) -> ffi::Py_ssize_t;
        type GetItem = unsafe extern "C" fn(*mut ffi::PyObject, ffi::Py_ssize_t) -> *mut ffi::PyObject;
        let (size, get_item): (Size, GetItem) = if list.cast::<PyList>().is_ok() {
            (ffi::PyList_Size, ffi::PyList_GetItem)
        } else if list.cast::<PyTuple>().is_ok() {
            (ffi::PyTuple_Size, ffi::PyTuple_GetItem)
        } else {
            return Ok(Entries::NotAList(self.type_name(list)));
        };
        // SAFETY: `list` is a list or a tuple (checked above) and the GIL is held.
        let len = unsafe { size(list.as_ptr()) } as usize;
        self.kept.reserve(2 * len);
        let mut read = ReadList::new(self.py, target, known, len);
        self.python_ran = false;
        let mut i = 0;
        // The items are borrowed and the size read again at each step: Python
        // code run by a lookup may shrink the list (see `ReadList::entry`).
        // SAFETY: as above; an index below the size gives a borrowed reference.
        while i < len.min(unsafe { size(list.as_ptr()) } as usize) {
            let item = unsafe { Borrowed::from_ptr(self.py, get_item(list.as_ptr(), i as ffi::Py_ssize_t)) };
            read.entry(self, &item)?;
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
    /// once. The dicts are kept alive in `Kept`, so no address is reused.
    dict_at: planner::FastMap<usize, u32>,
    last_dict: Option<(usize, u32)>,
    /// Where the last id was found in the map of live rows, in its order.
    known_pos: ffi::Py_ssize_t,
    /// Every str id so far is an exact str found by `next_known`.
    ids_in_order: bool,
}

impl<'k, 'py> ReadList<'k, 'py> {
    fn new(py: Python<'py>, target: Target, known: &'k Bound<'py, PyDict>, len: usize) -> Self {
        let mut out = planner::List::default();
        out.entries.reserve(len);
        ReadList {
            target,
            len,
            known,
            id_key: PyString::intern(py, target.id_key()),
            updates_key: PyString::intern(py, "updates"),
            out,
            dict_at: planner::FastMap::default(),
            last_dict: None,
            known_pos: 0,
            ids_in_order: true,
        }
    }

    /// Read one entry of the list, `item` borrowed from it, into `out`
    /// (pushed where it is made: an `Entry` returned from a call cost a
    /// store-forwarding stall). Only lookups by key may run Python code that
    /// changes the list, in `odd_entry` (which holds the entry) and in
    /// `current` (once the entry is read).
    fn entry(&mut self, x: &mut Extract<'py>, item: &Bound<'py, PyAny>) -> PyResult<()> {
        let Some(entry) = cast::<PyDict>(item) else {
            self.out.entries.push(Entry::not_a_dict(x.type_name(item)));
            return Ok(());
        };
        match self.id_and_updates(entry) {
            Some((id, updates)) => self.dict_entry(x, &id, &updates, 0),
            None => self.odd_entry(x, &entry.clone()),
        }
    }

    /// An entry whose keys are not just the interned literals. Lookups by key
    /// may run Python code (`__eq__`): the entry and its values are held.
    fn odd_entry(&mut self, x: &mut Extract<'py>, entry: &Bound<'py, PyDict>) -> PyResult<()> {
        x.python_ran = true;
        let (id, updates) = (entry.get_item(&self.id_key)?, entry.get_item(&self.updates_key)?);
        if let (Some(id), Some(updates), 2) = (&id, &updates, entry.len()) {
            return self.dict_entry(x, id, updates, 1);
        }
        let mut unexpected = Vec::new();
        for key in entry.keys() {
            let expected = key
                .cast::<PyString>()
                .is_ok_and(|k| k.to_str().is_ok_and(|k| k == self.target.id_key() || k == "updates"));
            if !expected {
                unexpected.push(x.key(&key)?);
            }
        }
        let shape = planner::BadShape { missing_id: id.is_none(), missing_updates: updates.is_none(), unexpected };
        self.out.entries.push(Entry::bad_shape(shape));
        Ok(())
    }

    /// An entry with its id and updates; `refs`: the references to `updates`
    /// the caller holds. The updates dict is read first: the lookup of the
    /// id's status may run Python code, and the id is kept by then.
    fn dict_entry(
        &mut self,
        x: &mut Extract<'py>,
        id: &Bound<'py, PyAny>,
        updates: &Bound<'py, PyAny>,
        refs: isize,
    ) -> PyResult<()> {
        let updates = match cast::<PyDict>(updates) {
            None => UpdatesRef::Other(x.type_name(updates)),
            Some(d) => UpdatesRef::Dict(self.dict(x, d, refs)?),
        };
        let id = match cast::<PyString>(id) {
            None => Id::Other(x.type_name(id)),
            Some(s) => match x.text(s) {
                None => Id::NotUtf8,
                Some(t) => {
                    // A str subclass may equal a str of another text.
                    self.ids_in_order &= PyString::is_exact_type_of(s);
                    Id::Str { id: t, current: self.current(x, s, t)? }
                }
            },
        };
        self.out.entries.push(Entry::dict(id, updates));
        Ok(())
    }

    /// The values of the id and `updates` keys, borrowed, if they are the
    /// entry's only keys and the interned literals (as drivers write them).
    fn id_and_updates<'a>(
        &self,
        entry: &'a Bound<'py, PyDict>,
    ) -> Option<(Borrowed<'a, 'py, PyAny>, Borrowed<'a, 'py, PyAny>)> {
        if entry.len() != 2 {
            return None;
        }
        let (mut id, mut updates) = (None, None);
        for (key, value) in dict_items(entry).take(2) {
            if key.is(&self.id_key) {
                id = Some(value);
            } else if key.is(&self.updates_key) {
                updates = Some(value);
            }
        }
        Some((id?, updates?))
    }

    /// The row in `out.known` of the current values that the caller's map of
    /// live rows holds for `id`, if any.
    fn current(&mut self, x: &mut Extract<'py>, id: &Bound<'py, PyString>, text: Txt) -> PyResult<Option<u32>> {
        let found;
        let row = match self.next_known(id) {
            Some(row) => row,
            None => {
                self.ids_in_order = false;
                x.python_ran = true;
                found = self.known.get_item(id)?;
                match &found {
                    Some(row) => row.as_borrowed(),
                    None => return Ok(None),
                }
            }
        };
        let fail = |problem: planner::KnownProblem<'_>| {
            Err(to_py(planner::known_row_error(self.target, planner::Text::as_str(&text), problem)))
        };
        let Ok(row) = row.cast::<PyTuple>() else {
            let name = x.type_name(&row);
            return fail(planner::KnownProblem::NotATuple(planner::Text::as_str(&name)));
        };
        let width = self.target.known_columns().len();
        if row.len() != width {
            return fail(planner::KnownProblem::Length(row.len()));
        }
        // The tuple, kept, keeps its values alive: their texts are borrowed.
        x.keep(row.as_any());
        let index = self.out.known.len() / width;
        for (k, value) in row.iter_borrowed().enumerate() {
            let value = if value.is_none() {
                None
            } else if let Ok(s) = value.cast::<PyString>() {
                let Ok(t) = s.to_str() else { return fail(planner::KnownProblem::ValueNotUtf8(k)) };
                Some(Txt::held(t))
            } else {
                let name = x.type_name(&value);
                return fail(planner::KnownProblem::ValueType(k, planner::Text::as_str(&name)));
            };
            self.out.known.push(value);
        }
        Ok(Some(u32::try_from(index).expect("fewer than 2**32 rows")))
    }

    /// The status of `id` if `id` is, as an object, one of the next keys of
    /// the map of live rows in its order. Drivers answer in the order of the
    /// volumes they were given, which is the order the hook built the map in:
    /// this finds almost every id without a hash lookup, which in a map of
    /// 100,000 rows is a cache miss. Only the same object counts, so a match
    /// is the map's own entry for `id`.
    fn next_known(&mut self, id: &Bound<'py, PyString>) -> Option<Borrowed<'k, 'py, PyAny>> {
        let mut pos = self.known_pos;
        for _ in 0..KNOWN_LOOKAHEAD {
            let (mut key, mut value) = (std::ptr::null_mut(), std::ptr::null_mut());
            // SAFETY: `known` is a live dict and the GIL is held; the references are borrowed.
            if unsafe { ffi::PyDict_Next(self.known.as_ptr(), &mut pos, &mut key, &mut value) } == 0 {
                return None;
            }
            if key == id.as_ptr() {
                self.known_pos = pos;
                // SAFETY: a borrowed reference to the dict's live value, used
                // before any Python code runs (and then kept if needed).
                return Some(unsafe { Borrowed::from_ptr(self.known.py(), value) });
            }
        }
        None
    }

    /// The index of an updates dict in the list's dicts, reading it if new;
    /// `refs`: the references to it that the caller holds.
    fn dict(&mut self, x: &mut Extract<'py>, dict: &Bound<'py, PyDict>, refs: isize) -> PyResult<u32> {
        // SAFETY: reading the reference count of a live object.
        if unsafe { ffi::Py_REFCNT(dict.as_ptr()) } <= 1 + refs {
            // Held by this entry (and the caller) only: no other entry shares it.
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
                x.keep(dict.as_any());
                let i = self.read_dict(x, dict)?;
                self.dict_at.insert(address, i);
                i
            }
        };
        self.last_dict = Some((address, index));
        Ok(index)
    }

    fn read_dict(&mut self, x: &mut Extract<'py>, dict: &Bound<'py, PyDict>) -> PyResult<u32> {
        if self.out.dicts.is_empty() {
            // Guess that the other entries look like this one: growing these
            // by doubling copies them and touches fresh memory each time.
            let rest = self.len - self.out.entries.len();
            let per_dict = dict.len().min(8);
            self.out.dicts.reserve(rest, rest * per_dict);
            x.kept.reserve(rest * (per_dict + 1));
        }
        let mut held = None;
        for (key, value) in dict_items(dict) {
            // The usual item, inline: an interned column name with a str or
            // None. (An item returned from a call cost a store-forwarding stall.)
            if let Some(i) = x.columns.iter().position(|c| c.is(key)) {
                if let Some((value, hash)) = x.column_value(i, &value) {
                    self.out.dicts.column(Column::ALL[i], value, hash);
                    continue;
                }
            }
            // Any other may run Python code (see `Extract::python_ran`): the
            // dict and the item are held meanwhile.
            held.get_or_insert_with(|| dict.clone());
            let item = x.item(&key.to_owned(), &value.to_owned())?;
            self.out.dicts.item(item);
        }
        Ok(self.out.dicts.end())
    }
}

/// A limit as Python's `operator.index` sees it (saturated to i64), checked.
fn limit<'py>(value: &Bound<'py, PyAny>) -> PyResult<(i64, Bound<'py, PyAny>)> {
    // SAFETY: PyNumber_Index returns a new reference, or NULL with an exception set.
    let index = unsafe { Bound::from_owned_ptr_or_err(value.py(), ffi::PyNumber_Index(value.as_ptr()))? };
    let n = match index.extract::<i64>() {
        Ok(n) => n,
        Err(_) if index.lt(0)? => i64::MIN,
        Err(_) => i64::MAX,
    };
    Ok((n, index))
}

fn check_limit(name: &str, (value, index): (i64, Bound<'_, PyAny>), min: i64) -> PyResult<usize> {
    let shown = || index.str().map_or_else(|_| value.to_string(), |s| s.to_string_lossy().into_owned());
    planner::check_limit(name, value, min, shown).map_err(to_py)
}

fn known<'a, 'py>(value: &'a Bound<'py, PyAny>, target: Target) -> PyResult<&'a Bound<'py, PyDict>> {
    value.cast::<PyDict>().map_err(|_| {
        let name = value.get_type().name().map_or_else(|_| "?".to_string(), |n| n.to_string_lossy().into_owned());
        to_py(planner::known_not_a_dict(target, &name))
    })
}

/// A list of `len` empty slots, each to be filled once by [`set_new_item`]
/// before Python code can see the list.
fn new_list(py: Python<'_>, len: usize) -> PyResult<Bound<'_, PyList>> {
    // SAFETY: PyList_New returns a new reference, or NULL with an exception set.
    let list = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyList_New(len as ffi::Py_ssize_t))? };
    // SAFETY: PyList_New makes a list.
    Ok(unsafe { list.cast_into_unchecked() })
}

fn set_new_item<'py>(list: &Bound<'py, PyList>, index: usize, item: Bound<'py, PyAny>) {
    // SAFETY: `index` is a slot of a list from `new_list`, filled once; the
    // list takes over the reference (a slot in range cannot fail).
    unsafe { ffi::PyList_SetItem(list.as_ptr(), index as ffi::Py_ssize_t, item.into_ptr()) };
}

/// Turns the plan into Python objects, handing back the driver's own strings.
struct Output<'py> {
    py: Python<'py>,
    kept: Kept<'py>,
    columns: Vec<Bound<'py, PyString>>,
}

impl<'py> Output<'py> {
    fn value(&mut self, value: Option<Txt>) -> Bound<'py, PyAny> {
        match value {
            Some(t) if t.object == Txt::HELD => PyString::new(self.py, planner::Text::as_str(&t)).into_any(),
            Some(t) => self.kept.hand(t.object),
            None => self.py.None().into_bound(self.py),
        }
    }

    fn column(&self, column: Column) -> &Bound<'py, PyString> {
        &self.columns[column as usize]
    }

    fn values(&mut self, values: &[(Column, Option<Txt>)]) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(self.py);
        for (column, value) in values {
            let value = self.value(*value);
            dict.set_item(self.column(*column), value)?;
        }
        Ok(dict)
    }

    fn ids(&mut self, plan: &planner::KindPlan<Txt>, members: &std::ops::Range<usize>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(self.py, plan.ids(members.clone()).map(|t| self.kept.hand(t.object)))
    }

    fn kind(&mut self, plan: &planner::KindPlan<Txt>) -> PyResult<Bound<'py, PyDict>> {
        let py = self.py;
        let sets = PyList::empty(py);
        for chunk in &plan.sets {
            let set = PyDict::new(py);
            set.set_item(intern!(py, "values"), self.values(&chunk.values)?)?;
            set.set_item(intern!(py, "ids"), self.ids(plan, &chunk.members)?)?;
            sets.append(set)?;
        }
        let rows = PyList::empty(py);
        for chunk in &plan.rows {
            let row = PyDict::new(py);
            row.set_item(intern!(py, "columns"), PyList::new(py, chunk.columns.iter().map(|c| self.column(*c)))?)?;
            // The ids and each column's values filled in one pass over the rows.
            let ids = new_list(py, chunk.members.len())?;
            let values: Vec<_> =
                (0..chunk.columns.len()).map(|_| new_list(py, chunk.members.len())).collect::<PyResult<_>>()?;
            for (i, (id, row)) in plan.rows(chunk).enumerate() {
                set_new_item(&ids, i, self.kept.hand(id.object));
                let mut filled = 0;
                for (column, value) in values.iter().zip(row) {
                    set_new_item(column, i, self.value(value));
                    filled += 1;
                }
                // No slot may stay empty (the lists are dropped if this fails).
                assert_eq!(filled, values.len(), "a row has a value per column");
            }
            row.set_item(intern!(py, "ids"), ids)?;
            row.set_item(intern!(py, "values"), PyList::new(py, values)?)?;
            rows.append(row)?;
        }
        let out = PyDict::new(py);
        out.set_item(intern!(py, "count"), plan.count)?;
        out.set_item(intern!(py, "unchanged"), plan.unchanged)?;
        out.set_item(intern!(py, "sets"), sets)?;
        out.set_item(intern!(py, "rows"), rows)?;
        Ok(out)
    }

    fn plan(&mut self, plan: &planner::Plan<Txt>) -> PyResult<Bound<'py, PyDict>> {
        let py = self.py;
        let out = PyDict::new(py);
        out.set_item(intern!(py, "service"), self.values(&plan.service)?)?;
        out.set_item(intern!(py, "volumes"), self.kind(&plan.volumes)?)?;
        out.set_item(intern!(py, "groups"), self.kind(&plan.groups)?)?;
        Ok(out)
    }
}

/// Check a driver's answer to `update_host_replication` and plan its writes.
/// The checking and planning run with the GIL released.
#[pyfunction]
#[allow(clippy::too_many_arguments)] // the Python signature: the driver's answer and the limits
#[pyo3(signature = (service_update, volume_updates, group_updates, known_volumes, known_groups, max_params, min_group))]
fn plan_updates<'py>(
    py: Python<'py>,
    service_update: &Bound<'py, PyAny>,
    volume_updates: &Bound<'py, PyAny>,
    group_updates: &Bound<'py, PyAny>,
    known_volumes: &Bound<'py, PyAny>,
    known_groups: &Bound<'py, PyAny>,
    max_params: &Bound<'py, PyAny>,
    min_group: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let (max_params, min_group) = (limit(max_params)?, limit(min_group)?);
    let limits = planner::Limits {
        max_params: check_limit("max_params", max_params, planner::MIN_MAX_PARAMS)?,
        min_group: check_limit("min_group", min_group, planner::MIN_MIN_GROUP)?,
    };
    let known_volumes = known(known_volumes, Target::Volume)?;
    let known_groups = known(known_groups, Target::Group)?;

    let columns = Column::ALL.iter().map(|c| PyString::intern(py, c.name())).collect();
    let mut extract = Extract {
        py,
        kept: Kept { py, objects: Vec::new(), handed: Vec::new() },
        type_names: planner::FastMap::default(),
        columns,
        recent: [None; Column::ALL.len()],
        python_ran: false,
    };
    let input = planner::Input {
        service: extract.service(service_update)?,
        volumes: extract.entries(Target::Volume, volume_updates, known_volumes)?,
        groups: if group_updates.is_none() {
            Entries::empty()
        } else {
            extract.entries(Target::Group, group_updates, known_groups)?
        },
    };
    py.check_signals()?;
    let plan = py.detach(move || planner::plan(input, limits)).map_err(to_py)?;
    py.check_signals()?;
    let mut output = Output { py, kept: extract.kept, columns: extract.columns };
    let out = output.plan(&plan);
    drop(plan); // its texts borrow from the strs that `output` keeps
    out
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("REPLICATION_STATUSES", validate::REPLICATION_STATUSES.to_vec())?;
    m.add("FENCE_STATUS", validate::FENCE_STATUS)?;
    let names = |target: Target| PyTuple::new(m.py(), target.known_columns().iter().map(|c| c.name()));
    m.add("VOLUME_KEYS", names(Target::Volume)?)?;
    m.add("GROUP_KEYS", names(Target::Group)?)?;
    m.add_function(wrap_pyfunction!(check_replication_status, m)?)?;
    m.add_function(wrap_pyfunction!(split_host, m)?)?;
    m.add_function(wrap_pyfunction!(check_backend_host, m)?)?;
    m.add_function(wrap_pyfunction!(plan_updates, m)?)?;
    Ok(())
}
