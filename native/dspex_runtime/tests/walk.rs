//! The explicit-stack walks (`dspex_runtime::walk`) on their own: identity readers and
//! writers over values, on a thread whose stack is far too small for recursion.
use dspex_runtime::{
    walk_read as read, walk_write as write, Failure, Node, ReadError, Reader, Value, Writer,
    MAX_DEPTH,
};

/// Reads a value back into a value: the identity, through the walker.
struct Identity;

enum It {
    Seq(std::vec::IntoIter<Value>),
    Pairs(std::vec::IntoIter<(Value, Value)>, Option<Value>),
}

impl Reader for Identity {
    type Item = Value;
    type Iter = It;
    type Stop = ();
    fn open(&mut self, mut item: Value) -> Result<Node<It>, Failure<()>> {
        Ok(match &mut item {
            Value::List(items) => Node::List(It::Seq(std::mem::take(items).into_iter())),
            Value::Tuple(items) => Node::Tuple(It::Seq(std::mem::take(items).into_iter())),
            Value::Map(pairs) => Node::Map(It::Pairs(std::mem::take(pairs).into_iter(), None)),
            Value::Atom(a) if a == "bad" => return Err(Failure::At(" is bad".into())),
            _ => Node::Leaf(item),
        })
    }
    fn next(&mut self, iter: &mut It) -> Result<Option<Value>, Failure<()>> {
        Ok(match iter {
            It::Seq(items) => items.next(),
            It::Pairs(_, pending @ Some(_)) => pending.take(),
            It::Pairs(pairs, pending) => pairs.next().map(|(k, v)| {
                *pending = Some(v);
                k
            }),
        })
    }
}

/// Writes a value as a value: the identity the other way.
struct Copy;

impl Writer for Copy {
    type Out = Value;
    fn leaf(&mut self, value: &Value) -> Result<Value, String> {
        match value {
            Value::Atom(a) if a == "bad" => Err(" is bad".into()),
            other => Ok(other.clone()),
        }
    }
    fn key(&mut self, key: &Value) -> Result<(), String> {
        match key {
            Value::List(_) => Err(" has a list key".into()),
            _ => Ok(()),
        }
    }
    fn list(&mut self, items: Vec<Value>) -> Result<Value, String> {
        Ok(Value::List(items))
    }
    fn tuple(&mut self, items: Vec<Value>) -> Result<Value, String> {
        Ok(Value::Tuple(items))
    }
    fn map(&mut self, pairs: Vec<(Value, Value)>) -> Result<Value, String> {
        Ok(Value::Map(pairs))
    }
}

fn small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// Every kind of container, nested `depth` deep in turn, around `leaf`.
fn nested(depth: usize, leaf: Value) -> Value {
    (0..depth - 1).fold(leaf, |v, i| match i % 4 {
        0 => Value::List(vec![Value::Int(0), v]),
        1 => Value::Tuple(vec![v]),
        2 => Value::Map(vec![(Value::str("k"), v)]),
        _ => Value::Map(vec![(v, Value::Nil)]),
    })
}

#[test]
fn the_limit_itself_round_trips_on_a_small_stack() {
    let leaf = || Value::str("x".repeat(1 << 20));
    let (read_back, written) = small_stack(move || {
        let read_back = read(&mut Identity, nested(MAX_DEPTH, leaf()), "arguments", 0).unwrap();
        let written = write(&mut Copy, &read_back, "result", 0).unwrap();
        (read_back, written)
    });
    // Compared here: the derived PartialEq (a test's convenience) recurses.
    let expected = nested(MAX_DEPTH, Value::str("x".repeat(1 << 20)));
    assert!(read_back == expected && written == expected);
}

#[test]
fn one_level_more_is_refused_naming_the_place() {
    let value = nested(MAX_DEPTH + 1, Value::Nil);
    let Err(ReadError::Invalid(m)) = read(&mut Identity, value.clone(), "arguments", 0) else {
        panic!("accepted")
    };
    assert!(m.starts_with("arguments key.k{0}[1] key.k{0}[1]"), "{m}");
    assert!(m.ends_with(" nests deeper than 512 levels"), "{m}");
    let m = write(&mut Copy, &value, "result", 0).unwrap_err();
    assert!(m.starts_with("result key.k{0}[1] key.k{0}[1]"), "{m}");
}

#[test]
fn framing_levels_are_not_counted() {
    let wrapped = Value::map([("inputs", nested(MAX_DEPTH, Value::Nil))]);
    assert!(read(&mut Identity, wrapped.clone(), "arguments", 0).is_err());
    assert!(read(&mut Identity, wrapped.clone(), "arguments", 1).is_ok());
    assert!(write(&mut Copy, &wrapped, "result", 0).is_err());
    assert!(write(&mut Copy, &wrapped, "result", 1).is_ok());
}

#[test]
fn errors_name_the_leaf_the_container_or_the_map() {
    let value = Value::map([(
        "inputs",
        Value::List(vec![Value::Int(1), Value::Atom("bad".into())]),
    )]);
    assert_eq!(
        read(&mut Identity, value.clone(), "arguments", 0),
        Err(ReadError::Invalid("arguments.inputs[1] is bad".into()))
    );
    assert_eq!(
        write(&mut Copy, &value, "result", 0).unwrap_err(),
        "result.inputs[1] is bad"
    );
    let keyed = Value::List(vec![Value::Map(vec![(Value::List(vec![]), Value::Nil)])]);
    assert_eq!(
        write(&mut Copy, &keyed, "arguments", 0).unwrap_err(),
        "arguments[0] has a list key"
    );
}

#[test]
fn empty_containers_and_scalars_come_through() {
    for value in [
        Value::Nil,
        Value::List(vec![]),
        Value::Tuple(vec![Value::List(vec![]), Value::Map(vec![])]),
        Value::Map(vec![(Value::Int(1), Value::Map(vec![]))]),
    ] {
        assert_eq!(read(&mut Identity, value.clone(), "a", 0).unwrap(), value);
        assert_eq!(write(&mut Copy, &value, "a", 0).unwrap(), value);
    }
}
