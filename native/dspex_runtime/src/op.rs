//! The operations Elixir asks for, declared once on the Rust side.
//!
//! Elixir names an operation with a string (`"execute"`); the NIF decodes it here, once,
//! before anything is queued, so an unknown name is an `:invalid_argument` error naming it
//! and never reaches a worker. Python's `dspex_bridge.session.OPS` names the same session
//! operations (a runtime test checks that the two sets agree).

use crate::error::Error;

/// Declares an operation enum with its wire names, `ALL`, `name` and `from_name`.
macro_rules! operations {
    ($(#[$meta:meta])* $enum:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $enum {
            $($variant),+
        }

        impl $enum {
            /// Every operation, in declaration order.
            pub const ALL: &'static [$enum] = &[$($enum::$variant),+];

            /// The name Elixir and Python use.
            pub fn name(self) -> &'static str {
                match self {
                    $($enum::$variant => $name),+
                }
            }

            /// The operation named `name`, or `:invalid_argument` naming it.
            pub fn from_name(name: &str) -> Result<$enum, Error> {
                match name {
                    $($name => Ok($enum::$variant),)+
                    other => Err(Error::invalid_argument(format!(
                        "unknown operation {other:?}"
                    ))),
                }
            }
        }
    };
}

operations! {
    /// An operation on a session, run by `dspex_bridge.call(session, name, args)`.
    Op {
        Configure => "configure",
        CreateProgram => "create_program",
        PutProgram => "put_program",
        Execute => "execute",
        Stream => "stream",
        ListPrograms => "list_programs",
        DeleteProgram => "delete_program",
        Reset => "reset",
        Info => "info",
        LoadModule => "load_module",
        History => "history",
        ExportProgram => "export_program",
        ImportProgram => "import_program",
        Compile => "compile",
        PyCall => "py_call",
        PyMethod => "py_method",
        PyAttr => "py_attr",
        PySetAttr => "py_set_attr",
    }
}

operations! {
    /// An operation that belongs to no session, run by `dspex_bridge.global_call(name, args)`
    /// (`TestPanic` never reaches Python: it panics in the worker).
    GlobalOp {
        Ping => "ping",
        Stats => "stats",
        TestEval => "test_eval",
        TestPanic => "test_panic",
    }
}

impl Op {
    /// Whether the operation runs the user's code (programs, loaded modules, any Python
    /// object through `Py`): only those may call back into the BEAM (tools, metrics,
    /// functions passed to `Py`) and send their output to the caller.
    pub fn runs_user_code(self) -> bool {
        matches!(
            self,
            Op::Execute
                | Op::Stream
                | Op::Compile
                | Op::LoadModule
                | Op::PyCall
                | Op::PyMethod
                | Op::PyAttr
                | Op::PySetAttr
        )
    }
}

impl GlobalOp {
    /// Only available when the runtime was started with `test_hooks: true`.
    pub fn is_test_hook(self) -> bool {
        matches!(self, GlobalOp::TestEval | GlobalOp::TestPanic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for op in Op::ALL {
            assert_eq!(Op::from_name(op.name()), Ok(*op));
        }
        for op in GlobalOp::ALL {
            assert_eq!(GlobalOp::from_name(op.name()), Ok(*op));
        }
    }

    #[test]
    fn an_unknown_name_is_an_invalid_argument_naming_it() {
        let err = Op::from_name("exec").unwrap_err();
        assert_eq!(err.reason, crate::error::Reason::InvalidArgument);
        assert_eq!(err.message, "unknown operation \"exec\"");
    }

    #[test]
    fn only_ops_that_run_user_code_reach_the_caller() {
        let user: Vec<_> = Op::ALL.iter().filter(|op| op.runs_user_code()).collect();
        let expected = [
            Op::Execute,
            Op::Stream,
            Op::LoadModule,
            Op::Compile,
            Op::PyCall,
            Op::PyMethod,
            Op::PyAttr,
            Op::PySetAttr,
        ];
        assert_eq!(user.len(), expected.len());
        assert!(expected.iter().all(|op| user.contains(&op)));
    }
}
