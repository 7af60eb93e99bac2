//! Values to Python objects and back, on a worker thread that holds the GIL.
//!
//! Errors name where in the value they are (`arguments.inputs[2]`), so the caller learns
//! exactly which part of a term has no faithful Python form.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::value::{Value, MAX_BIG_DIGITS, MAX_DEPTH};

/// Builds the Python object for a value. `atom` is `dspex_bridge.Atom`.
pub fn to_py<'py>(
    py: Python<'py>,
    value: &Value,
    atom: &Bound<'py, PyAny>,
) -> Result<Bound<'py, PyAny>, String> {
    to_py_at(py, value, atom, "arguments")
}

fn to_py_at<'py>(
    py: Python<'py>,
    value: &Value,
    atom: &Bound<'py, PyAny>,
    path: &str,
) -> Result<Bound<'py, PyAny>, String> {
    let fail = |e: PyErr| format!("{path}: {e}");
    Ok(match value {
        Value::Nil => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i
            .into_pyobject(py)
            .unwrap_or_else(|never| match never {})
            .into_any(),
        Value::BigInt(digits) => py
            .get_type::<PyInt>()
            .call1((digits.as_str(),))
            .map_err(fail)?,
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Atom(s) => atom.call1((s.as_str(),)).map_err(fail)?,
        Value::List(items) => {
            let list = PyList::empty(py);
            for (i, item) in items.iter().enumerate() {
                list.append(to_py_at(py, item, atom, &format!("{path}[{i}]"))?)
                    .map_err(fail)?;
            }
            list.into_any()
        }
        Value::Tuple(items) => {
            let objs = items
                .iter()
                .enumerate()
                .map(|(i, item)| to_py_at(py, item, atom, &format!("{path}{{{i}}}")))
                .collect::<Result<Vec<_>, _>>()?;
            PyTuple::new(py, objs).map_err(fail)?.into_any()
        }
        Value::Map(pairs) => {
            let dict = PyDict::new(py);
            for (k, v) in pairs {
                let at = key_path(path, k);
                if let Some(kind) = unhashable(k) {
                    return Err(format!(
                        "{path} has a key that is a {kind}, which cannot be a Python dict key"
                    ));
                }
                let key = to_py_at(py, k, atom, &format!("{path} key"))?;
                dict.set_item(key, to_py_at(py, v, atom, &at)?)
                    .map_err(fail)?;
            }
            // 1 and 1.0, true and 1, "a" and :a are one key in Python: refuse rather than
            // silently lose an entry.
            if dict.len() != pairs.len() {
                return Err(format!(
                    "{path} has keys that are equal in Python (like 1 and 1.0, true and 1, or \"a\" and :a)"
                ));
            }
            dict.into_any()
        }
    })
}

fn key_path(path: &str, key: &Value) -> String {
    match key {
        Value::Str(s) | Value::Atom(s) => format!("{path}.{s}"),
        other => format!("{path}[{other:?}]"),
    }
}

/// Lists and maps (also inside a tuple key) cannot be dict keys.
fn unhashable(key: &Value) -> Option<&'static str> {
    match key {
        Value::List(_) => Some("list"),
        Value::Map(_) => Some("map"),
        Value::Tuple(items) => items.iter().find_map(unhashable),
        _ => None,
    }
}

/// Reads a plain Python result (what `dspex_bridge.values.to_plain` produces) into a value.
/// Anything else is refused with a message naming where it was.
pub fn from_py(obj: &Bound<'_, PyAny>, atom: &Bound<'_, PyAny>) -> Result<Value, String> {
    from_py_at(obj, atom, "result", 1)
}

fn from_py_at(
    obj: &Bound<'_, PyAny>,
    atom: &Bound<'_, PyAny>,
    path: &str,
    depth: usize,
) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("{path} nests deeper than {MAX_DEPTH} levels"));
    }
    if obj.is_none() {
        return Ok(Value::Nil);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        if let Ok(n) = i.extract::<i64>() {
            return Ok(Value::Int(n));
        }
        let digits = i
            .str()
            .map_err(|e| format!("{path} is an integer too large to convert: {e}"))?
            .to_string();
        return if digits.trim_start_matches('-').len() <= MAX_BIG_DIGITS {
            Ok(Value::BigInt(digits))
        } else {
            Err(format!(
                "{path} is an integer of more than {MAX_BIG_DIGITS} digits"
            ))
        };
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let f = f.value();
        return if f.is_finite() {
            Ok(Value::Float(f))
        } else {
            Err(format!("{path} is {f}, which has no Elixir form"))
        };
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_str().map_err(|e| format!("{path}: {e}"))?.to_owned();
        return Ok(if obj.is_instance(atom).unwrap_or(false) {
            Value::Atom(text)
        } else {
            Value::Str(text)
        });
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return list
            .iter()
            .enumerate()
            .map(|(i, item)| from_py_at(&item, atom, &format!("{path}[{i}]"), depth + 1))
            .collect::<Result<_, _>>()
            .map(Value::List);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return tuple
            .iter()
            .enumerate()
            .map(|(i, item)| from_py_at(&item, atom, &format!("{path}{{{i}}}"), depth + 1))
            .collect::<Result<_, _>>()
            .map(Value::Tuple);
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut pairs = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            let key = from_py_at(&k, atom, &format!("{path} key"), depth + 1)?;
            let at = key_path(path, &key);
            pairs.push((key, from_py_at(&v, atom, &at, depth + 1)?));
        }
        return Ok(Value::Map(pairs));
    }
    let type_name = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into());
    Err(format!(
        "{path} is a Python {type_name}, which has no Elixir form"
    ))
}
