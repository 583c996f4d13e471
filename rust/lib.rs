//! The Python binding of the native core: the module, its exports and the one
//! conversion of core errors to Python exceptions. The logic lives in plain
//! Rust modules without pyo3 types (`planner`, `validate`), so `cargo test`
//! and Miri cover it; the binding reads the driver's answer (`read`), builds
//! the plan's objects (`output`), and keeps its unsafe code in `held`.

#![deny(unsafe_code)] // but in `held`, whose invariants are stated at its top

pub mod error;
mod held;
mod output;
pub mod planner;
mod read;
pub mod validate;

use pyo3::exceptions::{PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use planner::{Entries, Target};

pyo3::import_exception!(cinder_promote.errors, InvalidValue);
pyo3::import_exception!(cinder_promote.errors, DriverAnswerError);

/// The one conversion of core errors to Python exceptions.
pub(crate) fn to_py(err: error::Error) -> PyErr {
    match err {
        error::Error::InvalidValue(message) => InvalidValue::new_err(message),
        error::Error::ArgumentValue(message) => PyValueError::new_err(message),
        error::Error::ArgumentType(message) => PyTypeError::new_err(message),
        error::Error::DriverAnswer { message, details } => DriverAnswerError::new_err((message, details)),
        error::Error::OutOfMemory => PyMemoryError::new_err(()),
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

/// A limit as Python's `operator.index` sees it (saturated to i64), checked.
fn limit<'py>(value: &Bound<'py, PyAny>) -> PyResult<(i64, Bound<'py, PyAny>)> {
    let index = held::index(value)?;
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

/// Check a driver's answer to `update_host_replication` and plan its writes.
/// The answer is read, then checked and planned with the GIL released, then
/// the plan is built; the cyclic garbage collector is paused throughout (the
/// twin does the same), so that no finalizer changes the answer mid-read.
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
    let _paused = held::CollectorPaused::new(py);
    let (max_params, min_group) = (limit(max_params)?, limit(min_group)?);
    let limits = planner::Limits {
        max_params: check_limit("max_params", max_params, planner::MIN_MAX_PARAMS)?,
        min_group: check_limit("min_group", min_group, planner::MIN_MIN_GROUP)?,
    };
    let known_volumes = known(known_volumes, Target::Volume)?;
    let known_groups = known(known_groups, Target::Group)?;

    let mut reader = read::Reader::new(py)?;
    let input = planner::Input {
        service: reader.service(service_update)?,
        volumes: reader.entries(Target::Volume, volume_updates, known_volumes)?,
        groups: if group_updates.is_none() {
            Entries::empty()
        } else {
            reader.entries(Target::Group, group_updates, known_groups)?
        },
    };
    py.check_signals()?;
    // The input's texts are held by `reader` (see `held`), which outlives the plan.
    let plan = py.detach(move || planner::plan(input, limits)).map_err(to_py)?;
    py.check_signals()?;
    let out = output::Output::new(py, &reader.held, &reader.columns)?.plan(&plan);
    drop(plan);
    drop(reader);
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
