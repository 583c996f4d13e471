//! The one error type of the native core. `lib.rs` converts it to the Python
//! exceptions of `cinder_promote.errors`; the pure-Python twin raises the same
//! exceptions with the same messages.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A value given by the operator is not acceptable (Python: `InvalidValue`).
    InvalidValue(String),
    /// Our own caller passed an argument of the wrong type (Python: `TypeError`).
    ArgumentType(String),
    /// Our own caller passed an argument out of range (Python: `ValueError`).
    ArgumentValue(String),
    /// The driver's answer broke the contract; `details` names each entry
    /// (Python: `DriverAnswerError`).
    DriverAnswer { message: String, details: Vec<String> },
    /// An allocation proportional to the input failed, or a count does not
    /// fit (Python: `MemoryError`).
    OutOfMemory,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidValue(message) | Error::ArgumentType(message) | Error::ArgumentValue(message) => {
                f.write_str(message)
            }
            Error::DriverAnswer { message, .. } => f.write_str(message),
            Error::OutOfMemory => f.write_str("out of memory"),
        }
    }
}

impl std::error::Error for Error {}

/// An empty vector with room for `n` items, or [`Error::OutOfMemory`]: the
/// planner's allocations that grow with the input never abort the process.
pub fn vec_for<T>(n: usize) -> Result<Vec<T>, Error> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory)?;
    Ok(v)
}

/// `v.push(item)`, growing `v` fallibly.
#[inline]
pub fn push<T>(v: &mut Vec<T>, item: T) -> Result<(), Error> {
    if v.len() == v.capacity() {
        v.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
    }
    v.push(item);
    Ok(())
}

/// `n` as a u32 index, or [`Error::OutOfMemory`] (no input of this machine's
/// memory holds 2**32 entries, but a count is never truncated).
#[inline]
pub fn index(n: usize) -> Result<u32, Error> {
    u32::try_from(n).map_err(|_| Error::OutOfMemory)
}

/// Quote a value for an error message: control characters are shown as `\xNN`
/// so that a hostile host name cannot rewrite the operator's terminal.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_control_characters() {
        assert_eq!(quote("a\nb\u{7f}"), "'a\\x0ab\\x7f'");
        assert_eq!(quote("host@be"), "'host@be'");
    }
}
