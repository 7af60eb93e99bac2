//! The values that cross the bridge: a tree built from Elixir terms on a BEAM thread
//! (no GIL needed) and turned into Python objects on a worker (and back).
//!
//! Values come from outside (a caller's term, a Python result), so nothing here recurses
//! over them: dropping, describing and naming a place inside a value all use explicit
//! stacks, and a value nested [`MAX_DEPTH`] deep is as safe on a small dirty-scheduler stack
//! as a flat one.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// How deep a value may nest: the value itself is level 1. Deeper values are refused, so
/// that DSPy and Python (whose own code recurses over data) get nothing deeper.
pub const MAX_DEPTH: usize = 512;

/// Levels a session call wraps around the values its user gives and gets
/// (`arguments.inputs.question`, `result.trajectory.observation_0`). They do not count
/// against [`MAX_DEPTH`], so a value the user wrote may nest that deep wherever it goes.
pub const MAX_FRAMING: usize = 4;

/// The most decimal digits a big integer may have: CPython refuses to convert longer ones
/// between text and int (`sys.int_max_str_digits`, 4300), and so do we, with a clear error.
pub const MAX_BIG_DIGITS: usize = 4000;

/// An opaque object owned by the NIF side (an Elixir function kept for Python to call
/// back). Python holds it as a capsule and hands it back unchanged; it is freed when the
/// last holder, Python object or Elixir term, lets go.
#[derive(Clone)]
pub struct Handle(pub Arc<dyn Any + Send + Sync>);

impl Handle {
    pub fn new<T: Any + Send + Sync>(inner: T) -> Handle {
        Handle(Arc::new(inner))
    }

    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Handle")
    }
}

impl PartialEq for Handle {
    fn eq(&self, other: &Handle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A plain data value with both an Elixir and a Python form.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `nil` / `None`.
    Nil,
    Bool(bool),
    Int(i64),
    /// An integer beyond 64 bits, in decimal (at most [`MAX_BIG_DIGITS`] digits).
    BigInt(String),
    Float(f64),
    /// A UTF-8 binary / `str`.
    Str(String),
    /// An atom other than nil/true/false; a `str` subclass in Python so it round-trips.
    Atom(String),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// A map / `dict`; pairs keep the order they came in.
    Map(Vec<(Value, Value)>),
    /// An object of the NIF side that Python only carries (see [`Handle`]).
    Handle(Handle),
}

impl Drop for Value {
    /// Frees nested containers from an explicit stack: the derived drop would recurse once
    /// per level on whatever thread drops the value (a dirty scheduler has about 320 KB).
    fn drop(&mut self) {
        if !self.has_nested() {
            return;
        }
        let mut stack = Vec::new();
        self.take_nested(&mut stack);
        while let Some(mut value) = stack.pop() {
            value.take_nested(&mut stack);
            // `value` now holds no containers, so dropping it here recurses no further.
        }
    }
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// Builds a map with string keys, the shape most bridge arguments take.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::Str(k.into()), v))
                .collect(),
        )
    }

    /// Looks a string key up in a map value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs.iter().find_map(|(k, v)| match k {
                Value::Str(s) | Value::Atom(s) if s == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    fn is_container(&self) -> bool {
        matches!(self, Value::List(_) | Value::Tuple(_) | Value::Map(_))
    }

    fn has_nested(&self) -> bool {
        match self {
            Value::List(items) | Value::Tuple(items) => items.iter().any(Value::is_container),
            Value::Map(pairs) => pairs
                .iter()
                .any(|(k, v)| k.is_container() || v.is_container()),
            _ => false,
        }
    }

    /// Moves the containers directly inside this value onto `stack`, leaving `Nil`.
    fn take_nested(&mut self, stack: &mut Vec<Value>) {
        let mut take = |v: &mut Value| {
            if v.is_container() {
                stack.push(std::mem::replace(v, Value::Nil));
            }
        };
        match self {
            Value::List(items) | Value::Tuple(items) => items.iter_mut().for_each(take),
            Value::Map(pairs) => pairs.iter_mut().for_each(|(k, v)| {
                take(k);
                take(v)
            }),
            _ => {}
        }
    }

    /// A short rendering for messages (a map key in a path), cut after about `max` bytes.
    /// Iterative, so a deeply nested key costs no stack.
    pub fn describe(&self, max: usize) -> String {
        enum Tok<'a> {
            Val(&'a Value),
            Text(&'static str),
        }
        let mut out = String::new();
        let mut stack = vec![Tok::Val(self)];
        while let Some(tok) = stack.pop() {
            if out.len() > max {
                break;
            }
            let value = match tok {
                Tok::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Tok::Val(v) => v,
            };
            let (open, close, items): (&str, &'static str, Vec<Tok<'_>>) = match value {
                Value::Nil => ("nil", "", vec![]),
                Value::Bool(b) => (if *b { "true" } else { "false" }, "", vec![]),
                Value::Int(i) => {
                    out.push_str(&i.to_string());
                    continue;
                }
                Value::BigInt(d) => (d.as_str(), "", vec![]),
                Value::Float(f) => {
                    out.push_str(&format!("{f:?}"));
                    continue;
                }
                Value::Str(s) => {
                    out.push('"');
                    out.push_str(prefix(s, max + 1));
                    out.push('"');
                    continue;
                }
                Value::Atom(s) => {
                    out.push(':');
                    out.push_str(prefix(s, max + 1));
                    continue;
                }
                Value::Handle(_) => ("#Function<...>", "", vec![]),
                Value::List(items) => ("[", "]", separated(items.iter().map(|v| [Tok::Val(v)]))),
                Value::Tuple(items) => ("{", "}", separated(items.iter().map(|v| [Tok::Val(v)]))),
                Value::Map(pairs) => (
                    "%{",
                    "}",
                    separated(
                        pairs
                            .iter()
                            .map(|(k, v)| [Tok::Val(k), Tok::Text(" => "), Tok::Val(v)]),
                    ),
                ),
            };
            out.push_str(open);
            if !close.is_empty() {
                stack.push(Tok::Text(close));
                stack.extend(items.into_iter().rev());
            }
        }

        fn separated<'a, I, T>(items: I) -> Vec<Tok<'a>>
        where
            I: Iterator<Item = T>,
            T: IntoIterator<Item = Tok<'a>>,
        {
            let mut toks = Vec::new();
            for (i, item) in items.enumerate() {
                if i > 0 {
                    toks.push(Tok::Text(", "));
                }
                toks.extend(item);
            }
            toks
        }
        if out.len() > max {
            truncate_at_char(&mut out, max);
            out.push('…');
        }
        out
    }
}

fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn truncate_at_char(s: &mut String, max: usize) {
    let end = prefix(s, max).len();
    s.truncate(end);
}

/// One step from a container to something inside it, as error messages name it.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// `[i]`, an element of a list.
    Index(usize),
    /// `{i}`, an element of a tuple.
    Elem(usize),
    /// ` key`, a map key itself.
    Key,
    /// `.name` (string or atom key) or `[key]`, the value under a map key.
    Under(&'a Value),
}

/// The longest a map key is shown in a path: keys may be megabytes long.
const KEY_IN_PATH: usize = 64;

/// Names a place inside a value: `root` followed by `steps` (`arguments.inputs[2]`).
/// Built only when an error is reported, never while converting.
pub fn path<'a>(root: &str, steps: impl IntoIterator<Item = Step<'a>>) -> String {
    let mut out = root.to_owned();
    for step in steps {
        match step {
            Step::Index(i) => out.push_str(&format!("[{i}]")),
            Step::Elem(i) => out.push_str(&format!("{{{i}}}")),
            Step::Key => out.push_str(" key"),
            Step::Under(Value::Str(s) | Value::Atom(s)) => {
                out.push('.');
                out.push_str(prefix(s, KEY_IN_PATH));
                if s.len() > KEY_IN_PATH {
                    out.push('…');
                }
            }
            Step::Under(other) => {
                out.push('[');
                out.push_str(&other.describe(KEY_IN_PATH));
                out.push(']');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a thread with a small stack, where recursion over a deep value would
    /// overflow (and abort the test binary).
    fn on_small_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    fn nest(depth: usize, wrap: fn(Value) -> Value) -> Value {
        (0..depth).fold(Value::str("leaf"), |v, _| wrap(v))
    }

    #[test]
    fn get_finds_string_and_atom_keys() {
        let m = Value::Map(vec![
            (Value::str("a"), Value::Int(1)),
            (Value::Atom("b".into()), Value::Int(2)),
        ]);
        assert_eq!(m.get("a"), Some(&Value::Int(1)));
        assert_eq!(m.get("b"), Some(&Value::Int(2)));
        assert_eq!(m.get("c"), None);
        assert_eq!(Value::Nil.get("a"), None);
    }

    #[test]
    fn dropping_a_value_far_deeper_than_the_limit_needs_no_stack() {
        on_small_stack(|| {
            drop(nest(1_000_000, |v| Value::List(vec![v])));
            drop(nest(1_000_000, |v| Value::Map(vec![(v, Value::Nil)])));
            drop(nest(1_000_000, |v| Value::Map(vec![(Value::Nil, v)])));
            drop(nest(1_000_000, |v| Value::Tuple(vec![Value::Int(1), v])));
        });
    }

    #[test]
    fn describing_a_deep_key_is_bounded_and_iterative() {
        on_small_stack(|| {
            let deep = nest(100_000, |v| Value::Tuple(vec![v]));
            let text = deep.describe(40);
            assert!(text.starts_with("{{{{"), "{text}");
            assert!(text.ends_with('…') && text.len() <= 48, "{text}");
        });
        let key = Value::Map(vec![(Value::Int(1), Value::List(vec![Value::str("x")]))]);
        assert_eq!(key.describe(64), r#"%{1 => ["x"]}"#);
    }

    #[test]
    fn paths_name_each_step_and_cut_long_keys() {
        let long = Value::str("k".repeat(100_000));
        let tuple_key = Value::Tuple(vec![Value::Int(1), Value::Atom("a".into())]);
        let p = path(
            "arguments",
            [
                Step::Under(&Value::str("inputs")),
                Step::Index(2),
                Step::Elem(0),
                Step::Under(&tuple_key),
                Step::Key,
            ],
        );
        assert_eq!(p, "arguments.inputs[2]{0}[{1, :a}] key");
        let p = path("result", [Step::Under(&long)]);
        assert_eq!(p, format!("result.{}…", "k".repeat(64)));
    }
}
