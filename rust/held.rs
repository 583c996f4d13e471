//! The binding's only unsafe code: the strong references that keep the
//! driver's objects alive for a whole call, the texts borrowed from them, and
//! the few CPython calls that pyo3 has no checked form of.
//!
//! Invariants, on which every `unsafe` block below relies:
//!
//! 1. Python code may run at any allocation of a Python object (a garbage
//!    collection runs finalizers and `gc.callbacks`, which may switch threads),
//!    at any call into Python (a dict lookup calling `__eq__`), whenever a
//!    reference count drops to zero, and in any other thread while the GIL is
//!    released. So nothing here hands out a borrowed pointer: every object
//!    taken from a list, dict or tuple becomes a strong reference (a `Bound`)
//!    before anything else runs, the way CPython's own iterators do.
//! 2. A [`Txt`] points into the UTF-8 buffer of a str that [`Held`] holds, or
//!    that a tuple [`Held`] holds contains. A str is immutable and its UTF-8
//!    buffer (its own data, or the cache `PyUnicode_AsUTF8AndSize` fills) lives
//!    as long as the str; a tuple's items cannot be replaced from Python. Only
//!    this module makes a `Txt`, and only from a str it has just held. The
//!    `Held` of a call outlives every `Txt` of it (`plan_updates` drops the
//!    plan that holds them first), so a `Txt` never dangles, even while the
//!    GIL is released and other threads empty the driver's lists and dicts.
//! 3. Creating an object never assumes success: a NULL from CPython is the
//!    exception it set (`MemoryError`), never a panic.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::ptr::NonNull;

use pyo3::exceptions::{PyMemoryError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use pyo3::{ffi, PyTypeInfo};

use crate::planner;

fn out_of_memory() -> PyErr {
    PyMemoryError::new_err(())
}

/// Strong references to every object whose text or address a call uses.
pub struct Held<'py> {
    objects: Vec<Bound<'py, PyAny>>,
}

impl<'py> Held<'py> {
    pub fn new() -> Self {
        Held { objects: Vec::new() }
    }

    /// Hold `object` until the call ends; its index.
    #[inline]
    pub fn hold(&mut self, object: &Bound<'py, PyAny>) -> PyResult<u32> {
        let i = u32::try_from(self.objects.len()).map_err(|_| out_of_memory())?;
        if self.objects.len() == self.objects.capacity() {
            self.objects.try_reserve(1).map_err(|_| out_of_memory())?;
        }
        self.objects.push(object.clone());
        Ok(i)
    }

    /// Room for `n` more objects.
    pub fn reserve(&mut self, n: usize) -> PyResult<()> {
        self.objects.try_reserve(n).map_err(|_| out_of_memory())
    }

    /// Object `i`.
    pub fn get(&self, i: u32) -> &Bound<'py, PyAny> {
        &self.objects[i as usize]
    }

    /// The text of `s`, held, or None when it is not valid UTF-8 (lone
    /// surrogates; Python code may then have run, at the exception's allocation).
    #[inline]
    pub fn text(&mut self, s: &Bound<'py, PyString>) -> PyResult<Option<Txt>> {
        let Ok(text) = s.to_str() else { return Ok(None) };
        let object = self.hold(s.as_any())?;
        Ok(Some(Txt { ptr: NonNull::from(text.as_bytes()).cast(), len: text.len(), object }))
    }

    /// The text of item `k` of the held tuple `tuple`, if that item is a str
    /// of valid UTF-8. The tuple keeps the str alive (invariant 2): the `Txt`
    /// has no object of its own ([`Txt::IN_TUPLE`]).
    pub fn tuple_item_text(&self, tuple: u32, k: usize) -> Option<Txt> {
        let tuple = self.get(tuple).cast::<PyTuple>().ok()?;
        let item = tuple.get_borrowed_item(k).ok()?;
        let item = item.cast::<PyString>().ok()?;
        let text = item.to_str().ok()?;
        // The str is the tuple's, which is held and whose items never change.
        Some(Txt { ptr: NonNull::from(text.as_bytes()).cast(), len: text.len(), object: Txt::IN_TUPLE })
    }
}

/// A text borrowed from a str that the call holds (see the invariants above).
#[derive(Clone, Copy)]
pub struct Txt {
    ptr: NonNull<u8>,
    len: usize,
    /// Its str in [`Held`], or [`Txt::IN_TUPLE`].
    object: u32,
}

// SAFETY: a `Txt` is a shared reference to the immutable UTF-8 buffer of a str
// kept alive for the whole call (invariant 2); reading it needs no GIL.
unsafe impl Send for Txt {}
// SAFETY: as above.
unsafe impl Sync for Txt {}

impl Txt {
    /// `object` of a text read from a held tuple: the plan makes a new str of it.
    pub const IN_TUPLE: u32 = u32::MAX;

    /// Its str in [`Held`], unless it was read from a tuple.
    pub fn object(&self) -> Option<u32> {
        (self.object != Txt::IN_TUPLE).then_some(self.object)
    }
}

impl planner::Text for Txt {
    #[inline]
    fn as_str(&self) -> &str {
        // SAFETY: `ptr` and `len` were taken from a `&str` of a str that stays
        // alive and unchanged for as long as any `Txt` (invariant 2).
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.ptr.as_ptr(), self.len)) }
    }
}

/// The stored items of a dict as strong references, a subclass's overrides
/// not called (as `dict.items(d)` reads them). Python code that runs between
/// two steps may change the dict: `PyDict_Next` stays within the dict's
/// current table, and a change of size is the `RuntimeError` CPython's own
/// iterator raises.
pub struct DictItems<'a, 'py> {
    dict: &'a Bound<'py, PyDict>,
    pos: ffi::Py_ssize_t,
    len: usize,
}

impl<'a, 'py> DictItems<'a, 'py> {
    pub fn new(dict: &'a Bound<'py, PyDict>) -> Self {
        DictItems::from_position(dict, 0)
    }

    /// Going on from a [`DictItems::position`] of the same dict.
    pub fn from_position(dict: &'a Bound<'py, PyDict>, position: usize) -> Self {
        DictItems { dict, pos: ffi::Py_ssize_t::try_from(position).unwrap_or(ffi::Py_ssize_t::MAX), len: dict.len() }
    }

    /// Where the next step starts.
    pub fn position(&self) -> usize {
        usize::try_from(self.pos).unwrap_or(0)
    }
}

impl<'py> Iterator for DictItems<'_, 'py> {
    type Item = PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.dict.len() != self.len {
            self.len = usize::MAX; // once
            return Some(Err(PyRuntimeError::new_err("dictionary changed size during iteration")));
        }
        let (mut key, mut value) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: `dict` is a dict held by the caller and the GIL is held.
        if unsafe { ffi::PyDict_Next(self.dict.as_ptr(), &mut self.pos, &mut key, &mut value) } == 0 {
            return None;
        }
        let py = self.dict.py();
        // SAFETY: PyDict_Next gave two non-null borrowed references, valid
        // until Python code runs; they become strong references at once.
        Some(Ok(unsafe { (Bound::from_borrowed_ptr(py, key), Bound::from_borrowed_ptr(py, value)) }))
    }
}

/// How many references `object` has: a dict that only its entry and the
/// caller refer to is not shared with another entry.
#[inline]
pub fn refcount(object: &Bound<'_, PyAny>) -> isize {
    // SAFETY: reads the reference count of a live object.
    unsafe { ffi::Py_REFCNT(object.as_ptr()) }
}

/// `operator.index(value)`.
pub fn index<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: PyNumber_Index returns a new reference, or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(value.py(), ffi::PyNumber_Index(value.as_ptr())) }
}

/// A new empty list (`PyList::empty` panics when it cannot allocate).
pub fn new_list(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    // SAFETY: PyList_New returns a new reference to an empty list, or NULL with an exception set.
    let list = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyList_New(0))? };
    // SAFETY: it is a list.
    Ok(unsafe { list.cast_into_unchecked() })
}

/// A new empty dict (`PyDict::new` panics when it cannot allocate).
pub fn new_dict(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    // SAFETY: PyDict_New returns a new reference, or NULL with an exception set.
    let dict = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDict_New())? };
    // SAFETY: it is a dict.
    Ok(unsafe { dict.cast_into_unchecked() })
}

/// A new str of `text` (`PyString::new` panics when it cannot allocate).
pub fn new_str<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyString>> {
    let len = ffi::Py_ssize_t::try_from(text.len()).map_err(|_| out_of_memory())?;
    // SAFETY: `text` is valid UTF-8 of `len` bytes; a new reference or NULL with an exception set.
    let s = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyUnicode_FromStringAndSize(text.as_ptr().cast(), len))? };
    // SAFETY: it is a str.
    Ok(unsafe { s.cast_into_unchecked() })
}

/// The interned str of `text`, which holds no NUL (a name of ours), so that
/// drivers' literals are found by identity.
pub fn interned<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyString>> {
    let name = CString::new(text).map_err(|_| PyRuntimeError::new_err("a name with a NUL"))?;
    // SAFETY: a NUL-terminated UTF-8 string; a new reference or NULL with an exception set.
    let s = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyUnicode_InternFromString(name.as_ptr()))? };
    // SAFETY: it is a str.
    Ok(unsafe { s.cast_into_unchecked() })
}

/// The code points of a str, lone surrogates included (for quoting a str that
/// is not valid UTF-8), read without calling into Python.
pub fn code_points(s: &Bound<'_, PyString>) -> PyResult<Box<[u32]>> {
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a str; the result is a PyMem buffer of `size` wide
    // characters (plus a NUL), or NULL with an exception set.
    let buffer = unsafe { ffi::PyUnicode_AsWideCharString(s.as_ptr(), &mut size) };
    if buffer.is_null() {
        return Err(PyErr::fetch(s.py()));
    }
    let n = usize::try_from(size).unwrap_or(0);
    let mut out = Vec::new();
    let copied = out.try_reserve_exact(n).map(|()| {
        // SAFETY: the buffer holds `n` wide characters (UCS-4 where wchar_t is
        // 32 bits, as on Linux; UTF-16 units elsewhere, each shown as its own).
        let units = unsafe { std::slice::from_raw_parts(buffer, n) };
        out.extend(units.iter().map(|&c| c as u32));
    });
    // SAFETY: the buffer came from PyUnicode_AsWideCharString and is freed once.
    unsafe { ffi::PyMem_Free(buffer.cast()) };
    copied.map_err(|_| out_of_memory())?;
    Ok(out.into_boxed_slice())
}

/// Pauses the cyclic garbage collector until dropped, if it was running: no
/// finalizer or `gc.callbacks` runs during the call (the twin does the same),
/// so that both engines read the answer as it was when the call began.
pub struct CollectorPaused {
    was_enabled: bool,
}

impl CollectorPaused {
    pub fn new(_py: Python<'_>) -> Self {
        // SAFETY: the GIL is held (`_py`).
        CollectorPaused { was_enabled: unsafe { ffi::PyGC_Disable() } == 1 }
    }
}

impl Drop for CollectorPaused {
    fn drop(&mut self) {
        if self.was_enabled {
            // SAFETY: dropped where it was made, with the GIL held.
            unsafe { ffi::PyGC_Enable() };
        }
    }
}

/// Whether `object` is a str itself, not a subclass (the plan hands back the
/// driver's own str only then).
#[inline]
pub fn is_exact_str(object: &Bound<'_, PyAny>) -> bool {
    PyString::is_exact_type_of(object)
}
