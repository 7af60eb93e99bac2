//! Errors as the Elixir side sees them: a reason (an atom there) and a message, plus the
//! Python type and traceback when Python raised.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// One of the reasons `DSPex.Native.Error` documents (`"not_found"`, `"timeout"`, ...).
    pub reason: &'static str,
    pub message: String,
    pub python_type: Option<String>,
    pub traceback: Option<String>,
}

impl Error {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Error {
            reason,
            message: message.into(),
            python_type: None,
            traceback: None,
        }
    }

    pub fn closed(what: impl fmt::Display) -> Self {
        Error::new("closed", format!("{what} is closed"))
    }

    pub fn not_started(why: impl fmt::Display) -> Self {
        Error::new(
            "not_started",
            format!("the Python runtime is not running: {why}"),
        )
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new("invalid_argument", message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl std::error::Error for Error {}

/// Maps a reason string that came back from Python onto the static set Elixir knows.
pub fn known_reason(reason: &str) -> &'static str {
    match reason {
        "already_exists" => "already_exists",
        "not_found" => "not_found",
        "closed" => "closed",
        "invalid_signature" => "invalid_signature",
        "invalid_argument" => "invalid_argument",
        "no_lm" => "no_lm",
        "timeout" => "timeout",
        "overloaded" => "overloaded",
        "not_started" => "not_started",
        "internal_error" => "internal_error",
        _ => "python_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_reasons_become_python_error() {
        assert_eq!(known_reason("not_found"), "not_found");
        assert_eq!(known_reason("no_lm"), "no_lm");
        assert_eq!(known_reason("whatever"), "python_error");
    }

    #[test]
    fn display_names_reason_and_message() {
        let e = Error::not_started("dspy is missing");
        assert_eq!(e.reason, "not_started");
        assert_eq!(
            e.to_string(),
            "not_started: the Python runtime is not running: dspy is missing"
        );
    }
}
