//! Walks over nested data with an explicit stack, never the thread's.
//!
//! Terms and Python results come from outside and may nest up to [`MAX_DEPTH`] levels
//! around leaves of any size; recursing once per level overflowed a dirty scheduler's
//! stack (about 320 KB) from about 310 levels. [`read`] builds a [`Value`] from a foreign
//! tree (an Erlang term, a Python object) and [`write`] builds a foreign tree from a value.
//! Both keep one frame per open container on the heap, refuse anything deeper than
//! [`MAX_DEPTH`] (plus the levels of a call's own `framing`, see
//! [`crate::value::MAX_FRAMING`]), and name the place of an error (`arguments.inputs[2]`) only when there
//! is one: nothing path-shaped is built while converting, so the work and memory are
//! proportional to the data.

use crate::value::{path, Step, Value, MAX_DEPTH};

/// What a reader found at one place of the foreign tree.
pub enum Node<I> {
    Leaf(Value),
    List(I),
    Tuple(I),
    /// A map: its iterator yields a key, then its value, then the next key, ...
    Map(I),
}

/// Why a reader could not go on.
pub enum Failure<S> {
    /// The place has no faithful form; the text follows its path (`" is a pid"`).
    At(String),
    /// Stop without an error at a place (decoding ran out of budget).
    Stop(S),
}

impl<S> From<String> for Failure<S> {
    fn from(text: String) -> Self {
        Failure::At(text)
    }
}

/// What [`read`] ended with instead of a value.
#[derive(Debug, PartialEq)]
pub enum ReadError<S> {
    /// A complete message naming the place.
    Invalid(String),
    Stop(S),
}

/// A foreign tree, read one node at a time.
pub trait Reader {
    /// A node of the foreign tree.
    type Item;
    /// A container being read.
    type Iter;
    type Stop;
    /// Classifies a node: a leaf value or a container to iterate.
    fn open(&mut self, item: Self::Item) -> Result<Node<Self::Iter>, Failure<Self::Stop>>;
    /// The container's next element (for maps: key, value, key, ...), `None` at its end.
    /// An error here is about the container itself (`" is an improper list"`).
    fn next(&mut self, iter: &mut Self::Iter) -> Result<Option<Self::Item>, Failure<Self::Stop>>;
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    List,
    Tuple,
    Map,
}

struct ReadFrame<I> {
    kind: Kind,
    iter: I,
    items: Vec<Value>,
    pairs: Vec<(Value, Value)>,
    /// A map's key, read and waiting for its value.
    key: Option<Value>,
}

impl<I> ReadFrame<I> {
    fn new(kind: Kind, iter: I) -> Self {
        ReadFrame {
            kind,
            iter,
            items: Vec::new(),
            pairs: Vec::new(),
            key: None,
        }
    }

    /// How this frame names the child it is reading now.
    fn step(&self) -> Step<'_> {
        match self.kind {
            Kind::List => Step::Index(self.items.len()),
            Kind::Tuple => Step::Elem(self.items.len()),
            Kind::Map => match &self.key {
                None => Step::Key,
                Some(key) => Step::Under(key),
            },
        }
    }

    fn accept(&mut self, value: Value) {
        match (self.kind, self.key.take()) {
            (Kind::Map, None) => self.key = Some(value),
            (Kind::Map, Some(key)) => self.pairs.push((key, value)),
            _ => self.items.push(value),
        }
    }

    fn finish(mut self) -> Value {
        match self.kind {
            Kind::List => Value::List(std::mem::take(&mut self.items)),
            Kind::Tuple => Value::Tuple(std::mem::take(&mut self.items)),
            Kind::Map => Value::Map(std::mem::take(&mut self.pairs)),
        }
    }
}

fn read_path<I>(name: &str, frames: &[ReadFrame<I>]) -> String {
    path(name, frames.iter().map(ReadFrame::step))
}

fn failed<S, I>(failure: Failure<S>, name: &str, frames: &[ReadFrame<I>]) -> ReadError<S> {
    match failure {
        Failure::At(text) => ReadError::Invalid(format!("{}{text}", read_path(name, frames))),
        Failure::Stop(stop) => ReadError::Stop(stop),
    }
}

/// Reads the tree under `root` (named `name` in errors) into a value; `framing` levels
/// above the user's values do not count against [`MAX_DEPTH`].
pub fn read<R: Reader>(
    reader: &mut R,
    root: R::Item,
    name: &str,
    framing: usize,
) -> Result<Value, ReadError<R::Stop>> {
    let mut frames: Vec<ReadFrame<R::Iter>> = Vec::new();
    let mut item = root;
    loop {
        // `item` sits one level below the innermost open container.
        if frames.len() >= MAX_DEPTH + framing {
            let at = read_path(name, &frames);
            return Err(ReadError::Invalid(format!(
                "{at} nests deeper than {MAX_DEPTH} levels"
            )));
        }
        let mut done = match reader.open(item) {
            Ok(Node::Leaf(value)) => Some(value),
            Ok(Node::List(iter)) => push(&mut frames, Kind::List, iter),
            Ok(Node::Tuple(iter)) => push(&mut frames, Kind::Tuple, iter),
            Ok(Node::Map(iter)) => push(&mut frames, Kind::Map, iter),
            Err(failure) => return Err(failed(failure, name, &frames)),
        };
        // Hand finished values up and find the next item, closing containers on the way.
        item = loop {
            let Some(frame) = frames.last_mut() else {
                return Ok(done.expect("the root is finished"));
            };
            if let Some(value) = done.take() {
                frame.accept(value);
            }
            match reader.next(&mut frame.iter) {
                Ok(Some(next)) => break next,
                Ok(None) => {
                    let frame = frames.pop().expect("a frame is open");
                    done = Some(frame.finish());
                }
                Err(failure) => {
                    let above = frames.len() - 1;
                    return Err(failed(failure, name, &frames[..above]));
                }
            }
        };
    }
}

fn push<I>(frames: &mut Vec<ReadFrame<I>>, kind: Kind, iter: I) -> Option<Value> {
    frames.push(ReadFrame::new(kind, iter));
    None
}

/// Builds a foreign tree bottom-up. Errors are text that follows the place's path
/// (`": TypeError ..."`, `" has keys that are equal in Python"`).
pub trait Writer {
    type Out;
    /// Anything but a list, tuple or map.
    fn leaf(&mut self, value: &Value) -> Result<Self::Out, String>;
    /// Checks a map key before it is converted; an error is reported at the map.
    fn key(&mut self, _key: &Value) -> Result<(), String> {
        Ok(())
    }
    fn list(&mut self, items: Vec<Self::Out>) -> Result<Self::Out, String>;
    fn tuple(&mut self, items: Vec<Self::Out>) -> Result<Self::Out, String>;
    fn map(&mut self, pairs: Vec<(Self::Out, Self::Out)>) -> Result<Self::Out, String>;
}

struct WriteFrame<'v, O> {
    value: &'v Value,
    /// The child being converted: for maps 2 × pair + (0 key, 1 value).
    pos: usize,
    outs: Vec<O>,
    pairs: Vec<(O, O)>,
    key: Option<O>,
}

impl<'v, O> WriteFrame<'v, O> {
    fn child(&self) -> Option<&'v Value> {
        match self.value {
            Value::List(items) | Value::Tuple(items) => items.get(self.pos),
            Value::Map(pairs) => {
                pairs
                    .get(self.pos / 2)
                    .map(|(k, v)| if self.pos.is_multiple_of(2) { k } else { v })
            }
            _ => None,
        }
    }

    fn step(&self) -> Step<'v> {
        match self.value {
            Value::List(_) => Step::Index(self.pos),
            Value::Tuple(_) => Step::Elem(self.pos),
            Value::Map(_) if self.pos.is_multiple_of(2) => Step::Key,
            Value::Map(pairs) => Step::Under(&pairs[self.pos / 2].0),
            _ => Step::Key,
        }
    }

    fn accept(&mut self, out: O) {
        if matches!(self.value, Value::Map(_)) {
            match self.key.take() {
                None => self.key = Some(out),
                Some(key) => self.pairs.push((key, out)),
            }
        } else {
            self.outs.push(out);
        }
        self.pos += 1;
    }
}

fn write_path<O>(name: &str, frames: &[WriteFrame<'_, O>]) -> String {
    path(name, frames.iter().map(WriteFrame::step))
}

/// Builds the foreign form of `value` (named `name` in errors); `framing` as for [`read`].
pub fn write<W: Writer>(
    writer: &mut W,
    value: &Value,
    name: &str,
    framing: usize,
) -> Result<W::Out, String> {
    let mut frames: Vec<WriteFrame<'_, W::Out>> = Vec::new();
    let mut current = value;
    loop {
        if frames.len() >= MAX_DEPTH + framing {
            let at = write_path(name, &frames);
            return Err(format!("{at} nests deeper than {MAX_DEPTH} levels"));
        }
        let here = |frames: &[WriteFrame<'_, W::Out>], text: String| {
            format!("{}{text}", write_path(name, frames))
        };
        let mut done = match current {
            Value::List(items) | Value::Tuple(items) if !items.is_empty() => None,
            Value::Map(pairs) if !pairs.is_empty() => None,
            Value::List(_) => Some(writer.list(Vec::new())),
            Value::Tuple(_) => Some(writer.tuple(Vec::new())),
            Value::Map(_) => Some(writer.map(Vec::new())),
            leaf => Some(writer.leaf(leaf)),
        }
        .transpose()
        .map_err(|text| here(&frames, text))?;
        if done.is_none() {
            frames.push(WriteFrame {
                value: current,
                pos: 0,
                outs: Vec::new(),
                pairs: Vec::new(),
                key: None,
            });
        }
        current = loop {
            let Some(frame) = frames.last_mut() else {
                return Ok(done.expect("the root is finished"));
            };
            if let Some(out) = done.take() {
                frame.accept(out);
            }
            if let Some(child) = frame.child() {
                if matches!(frame.value, Value::Map(_)) && frame.pos.is_multiple_of(2) {
                    if let Err(text) = writer.key(child) {
                        let above = frames.len() - 1;
                        return Err(here(&frames[..above], text));
                    }
                }
                break child;
            }
            let frame = frames.pop().expect("a frame is open");
            let built = match frame.value {
                Value::List(_) => writer.list(frame.outs),
                Value::Tuple(_) => writer.tuple(frame.outs),
                _ => writer.map(frame.pairs),
            };
            done = Some(built.map_err(|text| here(&frames, text))?);
        };
    }
}
