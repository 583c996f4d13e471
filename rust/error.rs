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
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidValue(message) | Error::ArgumentType(message) | Error::ArgumentValue(message) => {
                f.write_str(message)
            }
            Error::DriverAnswer { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

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
