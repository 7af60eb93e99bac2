//! Errors as the Elixir side sees them: a reason (an atom there) and a message, plus the
//! Python type and traceback when Python raised. [`Reason`] is the one list of reasons the
//! library returns; `DSPex.Native.Error`, the README and Python's `errors.REASONS` must
//! agree with it (the contract test reads it through the `protocol` NIF).

use std::fmt;

/// Declares `Reason` with its atom names, `ALL`, `name` and `from_name`.
macro_rules! reasons {
    ($($(#[$meta:meta])* $variant:ident => $name:literal),+ $(,)?) => {
        /// Why a call failed: `DSPex.Native.Error`'s `:reason`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$meta])* $variant),+
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),+];

            /// The atom's name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Reason::$variant => $name),+
                }
            }

            /// The reason a Python error names; anything unknown is `python_error`.
            pub fn from_name(name: &str) -> Reason {
                match name {
                    $($name => Reason::$variant,)+
                    _ => Reason::PythonError,
                }
            }
        }
    };
}

reasons! {
    AlreadyExists => "already_exists",
    NotFound => "not_found",
    Closed => "closed",
    InvalidSignature => "invalid_signature",
    InvalidArgument => "invalid_argument",
    NoLm => "no_lm",
    PythonError => "python_error",
    Timeout => "timeout",
    Overloaded => "overloaded",
    NotStarted => "not_started",
    InternalError => "internal_error",
    /// Only Elixir returns it (a remote session's node went away); listed so that this
    /// list is the library's whole set.
    Nodedown => "nodedown",
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub reason: Reason,
    pub message: String,
    pub python_type: Option<String>,
    pub traceback: Option<String>,
}

impl Error {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Error {
            reason,
            message: message.into(),
            python_type: None,
            traceback: None,
        }
    }

    pub fn closed(what: impl fmt::Display) -> Self {
        Error::new(Reason::Closed, format!("{what} is closed"))
    }

    pub fn not_started(why: impl fmt::Display) -> Self {
        Error::new(
            Reason::NotStarted,
            format!("the Python runtime is not running: {why}"),
        )
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new(Reason::InvalidArgument, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(Reason::InternalError, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_reasons_become_python_error() {
        assert_eq!(Reason::from_name("not_found"), Reason::NotFound);
        assert_eq!(Reason::from_name("no_lm"), Reason::NoLm);
        assert_eq!(Reason::from_name("whatever"), Reason::PythonError);
    }

    #[test]
    fn names_round_trip() {
        for reason in Reason::ALL {
            assert_eq!(Reason::from_name(reason.name()), *reason);
        }
    }

    #[test]
    fn display_names_reason_and_message() {
        let e = Error::not_started("dspy is missing");
        assert_eq!(e.reason, Reason::NotStarted);
        assert_eq!(
            e.to_string(),
            "not_started: the Python runtime is not running: dspy is missing"
        );
    }
}
