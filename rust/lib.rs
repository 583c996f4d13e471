//! The Python binding of the native core: the module, its exports and the one
//! conversion of core errors to Python exceptions. The logic lives in plain
//! Rust modules without pyo3 types, so `cargo test` covers it.

pub mod error;
pub mod validate;

use pyo3::prelude::*;
use pyo3::types::PyString;

pyo3::import_exception!(cinder_promote.errors, InvalidValue);

fn to_py(err: error::Error) -> PyErr {
    match err {
        error::Error::InvalidValue(message) => InvalidValue::new_err(message),
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

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("REPLICATION_STATUSES", validate::REPLICATION_STATUSES.to_vec())?;
    m.add("FENCE_STATUS", validate::FENCE_STATUS)?;
    m.add_function(wrap_pyfunction!(check_replication_status, m)?)?;
    m.add_function(wrap_pyfunction!(split_host, m)?)?;
    m.add_function(wrap_pyfunction!(check_backend_host, m)?)?;
    Ok(())
}
