//! Values to Python objects and back, on a worker thread that holds the GIL.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::value::{Value, MAX_DEPTH};

/// Builds the Python object for a value. `atom` is `dspex_bridge.Atom`.
pub fn to_py<'py>(
    py: Python<'py>,
    value: &Value,
    atom: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Nil => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Atom(s) => atom.call1((s.as_str(),))?,
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item, atom)?)?;
            }
            list.into_any()
        }
        Value::Tuple(items) => {
            let objs = items
                .iter()
                .map(|item| to_py(py, item, atom))
                .collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, objs)?.into_any()
        }
        Value::Map(pairs) => {
            let dict = PyDict::new(py);
            for (k, v) in pairs {
                dict.set_item(to_py(py, k, atom)?, to_py(py, v, atom)?)?;
            }
            dict.into_any()
        }
    })
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
        return i
            .extract::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("{path} is an integer beyond 64 bits"));
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
            .map(|(i, item)| from_py_at(&item, atom, &format!("{path}[{i}]"), depth + 1))
            .collect::<Result<_, _>>()
            .map(Value::Tuple);
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut pairs = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            let key = from_py_at(&k, atom, &format!("{path} key"), depth + 1)?;
            let at = match &key {
                Value::Str(s) | Value::Atom(s) => format!("{path}[{s:?}]"),
                other => format!("{path}[{other:?}]"),
            };
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
