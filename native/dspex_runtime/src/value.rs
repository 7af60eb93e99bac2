//! The values that cross the bridge: a tree built from Elixir terms on a BEAM thread
//! (no GIL needed) and turned into Python objects on a worker (and back).

/// How deep a term may nest. Deeper terms are refused rather than risking the stack of a
/// scheduler thread (decoding is recursive) or Python's recursion limit.
pub const MAX_DEPTH: usize = 512;

/// The most decimal digits a big integer may have: CPython refuses to convert longer ones
/// between text and int (`sys.int_max_str_digits`, 4300), and so do we, with a clear error.
pub const MAX_BIG_DIGITS: usize = 4000;

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
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Self {
        o.map_or(Value::Nil, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
