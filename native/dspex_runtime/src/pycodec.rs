//! Values to Python objects and back, on a worker thread that holds the GIL.
//!
//! Both directions walk with an explicit stack ([`crate::walk`]), so a value nested
//! [`crate::value::MAX_DEPTH`] deep costs no thread stack. Errors name where in the value
//! they are (`arguments.inputs[2]`), so the caller learns exactly which part of a term has
//! no faithful Python form.

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyCapsule, PyCapsuleMethods, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};

use crate::value::{Handle, Value, MAX_BIG_DIGITS};
use crate::walk::{self, Failure, Node, ReadError, Reader, Writer};

/// The capsule name of a [`Handle`] held by Python.
const HANDLE: &std::ffi::CStr = c"dspex_native.handle";

/// Builds the Python object for a value. `atom` is `dspex_bridge.Atom`; `framing` the
/// levels of the call's own wrapping (see [`crate::value::MAX_FRAMING`]).
pub fn to_py<'py>(
    py: Python<'py>,
    value: &Value,
    atom: &Bound<'py, PyAny>,
    framing: usize,
) -> Result<Bound<'py, PyAny>, String> {
    walk::write(&mut ToPy { py, atom }, value, "arguments", framing)
}

struct ToPy<'a, 'py> {
    py: Python<'py>,
    atom: &'a Bound<'py, PyAny>,
}

fn fail(e: PyErr) -> String {
    format!(": {e}")
}

impl<'py> Writer for ToPy<'_, 'py> {
    type Out = Bound<'py, PyAny>;

    fn leaf(&mut self, value: &Value) -> Result<Self::Out, String> {
        let py = self.py;
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
            Value::Atom(s) => self.atom.call1((s.as_str(),)).map_err(fail)?,
            Value::Handle(handle) => PyCapsule::new_with_value(py, handle.clone(), HANDLE)
                .map_err(fail)?
                .into_any(),
            Value::List(_) | Value::Tuple(_) | Value::Map(_) => {
                unreachable!("the walker builds containers")
            }
        })
    }

    /// Lists and maps (also inside a tuple key) cannot be dict keys.
    fn key(&mut self, key: &Value) -> Result<(), String> {
        let mut stack = vec![key];
        while let Some(k) = stack.pop() {
            let kind = match k {
                Value::List(_) => "list",
                Value::Map(_) => "map",
                Value::Tuple(items) => {
                    stack.extend(items);
                    continue;
                }
                _ => continue,
            };
            return Err(format!(
                " has a key that is a {kind}, which cannot be a Python dict key"
            ));
        }
        Ok(())
    }

    fn list(&mut self, items: Vec<Self::Out>) -> Result<Self::Out, String> {
        Ok(PyList::new(self.py, items).map_err(fail)?.into_any())
    }

    fn tuple(&mut self, items: Vec<Self::Out>) -> Result<Self::Out, String> {
        Ok(PyTuple::new(self.py, items).map_err(fail)?.into_any())
    }

    fn map(&mut self, pairs: Vec<(Self::Out, Self::Out)>) -> Result<Self::Out, String> {
        let dict = PyDict::new(self.py);
        let given = pairs.len();
        for (k, v) in pairs {
            dict.set_item(k, v).map_err(fail)?;
        }
        // 1 and 1.0, true and 1, "a" and :a are one key in Python: refuse rather than
        // silently lose an entry.
        if dict.len() != given {
            return Err(
                " has keys that are equal in Python (like 1 and 1.0, true and 1, or \"a\" and :a)"
                    .into(),
            );
        }
        Ok(dict.into_any())
    }
}

/// Reads a plain Python result (what `dspex_bridge.values.to_plain` produces) into a value.
/// Anything else is refused with a message naming where it was. `framing` as for `to_py`.
pub fn from_py(
    obj: &Bound<'_, PyAny>,
    atom: &Bound<'_, PyAny>,
    framing: usize,
) -> Result<Value, String> {
    match walk::read(&mut FromPy { atom }, obj.clone(), "result", framing) {
        Ok(value) => Ok(value),
        Err(ReadError::Invalid(message)) => Err(message),
        Err(ReadError::Stop(never)) => match never {},
    }
}

struct FromPy<'a, 'py> {
    atom: &'a Bound<'py, PyAny>,
}

enum PyIter<'py> {
    Seq(Bound<'py, PyAny>, usize),
    Dict(
        pyo3::types::iter::BoundDictIterator<'py>,
        Option<Bound<'py, PyAny>>,
    ),
}

impl<'py> Reader for FromPy<'_, 'py> {
    type Item = Bound<'py, PyAny>;
    type Iter = PyIter<'py>;
    type Stop = std::convert::Infallible;

    fn open(&mut self, obj: Self::Item) -> Result<Node<Self::Iter>, Failure<Self::Stop>> {
        if obj.is_none() {
            return Ok(Node::Leaf(Value::Nil));
        }
        if let Ok(b) = obj.cast::<PyBool>() {
            return Ok(Node::Leaf(Value::Bool(b.is_true())));
        }
        if let Ok(i) = obj.cast::<PyInt>() {
            if let Ok(n) = i.extract::<i64>() {
                return Ok(Node::Leaf(Value::Int(n)));
            }
            let digits = i
                .str()
                .map_err(|e| format!(" is an integer too large to convert: {e}"))?
                .to_string();
            return if digits.trim_start_matches('-').len() <= MAX_BIG_DIGITS {
                Ok(Node::Leaf(Value::BigInt(digits)))
            } else {
                Err(format!(" is an integer of more than {MAX_BIG_DIGITS} digits").into())
            };
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            let f = f.value();
            return if f.is_finite() {
                Ok(Node::Leaf(Value::Float(f)))
            } else {
                Err(format!(" is {f}, which has no Elixir form").into())
            };
        }
        if let Ok(s) = obj.cast::<PyString>() {
            let text = s.to_str().map_err(|e| format!(": {e}"))?.to_owned();
            return Ok(Node::Leaf(if obj.is_instance(self.atom).unwrap_or(false) {
                Value::Atom(text)
            } else {
                Value::Str(text)
            }));
        }
        if obj.is_instance_of::<PyList>() {
            return Ok(Node::List(PyIter::Seq(obj, 0)));
        }
        if obj.is_instance_of::<PyTuple>() {
            return Ok(Node::Tuple(PyIter::Seq(obj, 0)));
        }
        if let Ok(dict) = obj.cast::<PyDict>() {
            return Ok(Node::Map(PyIter::Dict(dict.clone().into_iter(), None)));
        }
        if let Ok(capsule) = obj.cast::<PyCapsule>() {
            if capsule.is_valid_checked(Some(HANDLE)) {
                let pointer = capsule.pointer_checked(Some(HANDLE)).map_err(fail)?;
                // SAFETY: a capsule with this name is only ever made by `to_py`, from a
                // Handle, and lives (with its Handle) at least as long as `obj`.
                let handle = unsafe { pointer.cast::<Handle>().as_ref() }.clone();
                return Ok(Node::Leaf(Value::Handle(handle)));
            }
        }
        let type_name = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "object".into());
        Err(format!(" is a Python {type_name}, which has no Elixir form").into())
    }

    fn next(&mut self, iter: &mut Self::Iter) -> Result<Option<Self::Item>, Failure<Self::Stop>> {
        Ok(match iter {
            PyIter::Seq(seq, i) => {
                let item = if let Ok(list) = seq.cast::<PyList>() {
                    (*i < list.len()).then(|| list.get_item(*i)).transpose()
                } else {
                    let tuple = seq.cast::<PyTuple>().map_err(|e| format!(": {e}"))?;
                    (*i < tuple.len()).then(|| tuple.get_item(*i)).transpose()
                }
                .map_err(fail)?;
                *i += 1;
                item
            }
            PyIter::Dict(_, pending @ Some(_)) => pending.take(),
            PyIter::Dict(items, pending) => items.next().map(|(k, v)| {
                *pending = Some(v);
                k
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::MAX_DEPTH;

    /// A value nested `depth` deep through every kind of container, around `leaf`.
    fn nested(depth: usize, leaf: Value) -> Value {
        (0..depth - 1).fold(leaf, |v, i| match i % 3 {
            0 => Value::List(vec![v]),
            1 => Value::Tuple(vec![Value::Int(1), v]),
            _ => Value::map([("k", v)]),
        })
    }

    /// A stand-in for `dspex_bridge.Atom`: a str subclass.
    fn atom_type(py: Python<'_>) -> Bound<'_, PyAny> {
        py.eval(c"type('Atom', (str,), {})", None, None).unwrap()
    }

    fn with_python<T: Send + 'static>(f: impl FnOnce(Python<'_>) -> T + Send + 'static) -> T {
        pyo3::Python::initialize();
        // A stack under a third of a dirty scheduler's: any recursion per level would overflow it.
        std::thread::Builder::new()
            .stack_size(96 * 1024)
            .spawn(move || Python::attach(f))
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn depth_512_around_a_megabyte_round_trips_without_recursion() {
        let value = nested(MAX_DEPTH, Value::str("x".repeat(1 << 20)));
        let back = with_python(move |py| {
            let atom = atom_type(py);
            let obj = to_py(py, &value, &atom, 0).unwrap();
            (from_py(&obj, &atom, 0).unwrap(), value)
        });
        // Not assert_eq!: the message would print a megabyte.
        assert!(back.0 == back.1, "the value came back changed");
    }

    #[test]
    fn one_more_level_is_refused_in_both_directions() {
        let (to, from) = with_python(|py| {
            let atom = atom_type(py);
            let to = to_py(py, &nested(MAX_DEPTH + 1, Value::Nil), &atom, 0).unwrap_err();
            let deep = py
                .eval(c"[[[0]]]", None, None)
                .unwrap()
                .unbind()
                .into_bound(py);
            let mut obj = deep;
            for _ in 0..MAX_DEPTH {
                obj = PyList::new(py, [obj]).unwrap().into_any();
            }
            (to, from_py(&obj, &atom, 0).unwrap_err())
        });
        assert!(to.starts_with("arguments{1}[0].k{1}[0].k"), "{to}");
        assert!(to.ends_with("nests deeper than 512 levels"), "{to}");
        assert!(from.starts_with("result[0][0][0]"), "{from}");
        assert!(from.ends_with("nests deeper than 512 levels"), "{from}");
    }

    #[test]
    fn a_handle_crosses_python_as_the_same_object() {
        let handle = Handle::new(42_u32);
        let value = Value::List(vec![Value::Handle(handle.clone())]);
        let back = with_python(move |py| {
            let atom = atom_type(py);
            let obj = to_py(py, &value, &atom, 0).unwrap();
            from_py(&obj, &atom, 0).unwrap()
        });
        let Value::List(items) = &back else {
            panic!("{back:?}")
        };
        let Value::Handle(h) = &items[0] else {
            panic!("{back:?}")
        };
        assert_eq!(h, &handle);
        assert_eq!(h.downcast_ref::<u32>(), Some(&42));
    }
}
