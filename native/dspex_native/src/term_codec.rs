//! Erlang terms to bridge values and back.
//!
//! Decoding runs on the calling scheduler (terms belong to the caller's environment) and
//! needs no GIL; a term with no Python form is refused with a message that names where in
//! the argument it sits (`inputs.question`, `inputs[2]`). Both directions walk with an
//! explicit stack (`dspex_runtime::walk`): nesting never uses the thread's stack, and the
//! path of an error is built only when there is one.
//!
//! On a normal scheduler decoding runs on a budget counted in units of work: a term too
//! big to copy within about a millisecond is reported as [`Decode::TooBig`], and the caller
//! retries on a dirty CPU scheduler, where there is no limit.

use rustler::types::map::MapIterator;
use rustler::types::tuple::make_tuple;
use rustler::{Atom, Encoder, Env, ResourceArc, Term, TermType};

use dspex_runtime::{
    walk_read, walk_write, Failure, Handle, Node, ReadError, Reader, Value, Writer, MAX_BIG_DIGITS,
    MAX_FRAMING,
};

use crate::resource::FunHandle;

/// Work a normal scheduler may do decoding one argument: one unit per term, plus one per
/// 32 bytes copied (about 20,000 terms or 640 KB, well under a millisecond).
pub const NORMAL_BUDGET: usize = 20_000;

/// The bits of the largest integer with [`MAX_BIG_DIGITS`] digits, rounded up: anything
/// longer is refused before it is turned into text (which costs time quadratic in length).
const MAX_BIG_BITS: u64 = 13_300;

#[derive(Debug, PartialEq)]
pub enum Decode {
    /// The term has no Python form; the message says where and why.
    Invalid(String),
    /// Over budget: decode it again on a dirty scheduler.
    TooBig,
}

impl From<String> for Decode {
    fn from(message: String) -> Self {
        Decode::Invalid(message)
    }
}

/// Decodes `term`; `path` names it in error messages. `budget: None` means no limit.
/// `framing`: the levels the call itself wraps around the user's values (see MAX_FRAMING).
pub fn decode(
    term: Term<'_>,
    path: &str,
    budget: Option<usize>,
    framing: usize,
) -> Result<Value, Decode> {
    let mut reader = TermReader {
        left: budget.unwrap_or(usize::MAX),
        env: std::marker::PhantomData,
    };
    walk_read(&mut reader, term, path, framing).map_err(|e| match e {
        ReadError::Invalid(message) => Decode::Invalid(message),
        ReadError::Stop(OverBudget) => Decode::TooBig,
    })
}

pub struct OverBudget;

struct TermReader<'a> {
    left: usize,
    env: std::marker::PhantomData<Env<'a>>,
}

impl TermReader<'_> {
    fn spend(&mut self, units: usize) -> Result<(), Failure<OverBudget>> {
        self.left = self
            .left
            .checked_sub(units)
            .ok_or(Failure::Stop(OverBudget))?;
        Ok(())
    }
}

enum TermIter<'a> {
    /// The rest of a list.
    List(Term<'a>),
    Tuple(Env<'a>, &'a [rustler::sys::ErlNifTerm], usize),
    /// A map's pairs, and the value of the key just handed out.
    Map(Box<MapIterator<'a>>, Option<Term<'a>>),
}

impl<'a> Reader for TermReader<'a> {
    type Item = Term<'a>;
    type Iter = TermIter<'a>;
    type Stop = OverBudget;

    fn open(&mut self, term: Term<'a>) -> Result<Node<TermIter<'a>>, Failure<OverBudget>> {
        self.spend(1)?;
        let leaf = match term.get_type() {
            TermType::Atom => {
                let name = atom_name(term).ok_or_else(|| " is an unreadable atom".to_owned())?;
                self.spend(name.len() / 32)?;
                match name.as_str() {
                    "nil" => Value::Nil,
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => Value::Atom(name),
                }
            }
            TermType::Binary => {
                let bin = term
                    .decode_as_binary()
                    .map_err(|_| " is a bitstring, not a binary".to_owned())?;
                // Charged before the copy and the UTF-8 check, which cost as much.
                self.spend(bin.len() / 32)?;
                std::str::from_utf8(bin.as_slice())
                    .map(|s| Value::Str(s.to_owned()))
                    .map_err(|e| format!(" is a binary that is not valid UTF-8 ({e})"))?
            }
            TermType::Integer => match term.decode::<i64>() {
                Ok(n) => Value::Int(n),
                Err(_) => {
                    let big: rustler::BigInt = term
                        .decode()
                        .map_err(|_| " is an unreadable integer".to_owned())?;
                    let bits = big.bits();
                    self.spend(usize::try_from(bits / 256).unwrap_or(usize::MAX))?;
                    let digits = (bits <= MAX_BIG_BITS).then(|| big.to_string());
                    match digits {
                        Some(d) if d.trim_start_matches('-').len() <= MAX_BIG_DIGITS => {
                            Value::BigInt(d)
                        }
                        _ => {
                            return Err(format!(
                                " is an integer of more than {MAX_BIG_DIGITS} digits"
                            )
                            .into())
                        }
                    }
                }
            },
            TermType::Float => term
                .decode::<f64>()
                .map(Value::Float)
                .map_err(|_| " is an unreadable float".to_owned())?,
            TermType::List => return Ok(Node::List(TermIter::List(term))),
            TermType::Tuple => {
                let env = term.get_env();
                let mut arity = 0;
                let mut elems = std::ptr::null();
                // SAFETY: enif_get_tuple points `elems` at the tuple's own array, which lives
                // as long as the term's environment ('a); nothing is copied.
                let ok = unsafe {
                    rustler::sys::enif_get_tuple(
                        env.as_c_arg(),
                        term.as_c_arg(),
                        &mut arity,
                        &mut elems,
                    )
                };
                if ok == 0 {
                    return Err(" is an unreadable tuple".to_owned().into());
                }
                let elems = if arity == 0 {
                    &[][..]
                } else {
                    // SAFETY: `arity` terms starting at `elems`, valid for 'a (see above).
                    unsafe { std::slice::from_raw_parts(elems, arity as usize) }
                };
                return Ok(Node::Tuple(TermIter::Tuple(env, elems, 0)));
            }
            TermType::Map => {
                let iter =
                    MapIterator::new(term).ok_or_else(|| " is an unreadable map".to_owned())?;
                return Ok(Node::Map(TermIter::Map(Box::new(iter), None)));
            }
            TermType::Ref => match term.decode::<ResourceArc<FunHandle>>() {
                // A function kept for Python to call back (see FunHandle).
                Ok(handle) => Value::Handle(Handle::new(handle)),
                Err(_) => return Err(no_python_form("reference")),
            },
            TermType::Pid => return Err(no_python_form("pid")),
            TermType::Port => return Err(no_python_form("port")),
            TermType::Fun => return Err(no_python_form("function")),
            _ => return Err(no_python_form("term of unknown type")),
        };
        Ok(Node::Leaf(leaf))
    }

    fn next(&mut self, iter: &mut TermIter<'a>) -> Result<Option<Term<'a>>, Failure<OverBudget>> {
        Ok(match iter {
            TermIter::List(rest) => match rest.list_get_cell() {
                Ok((head, tail)) => {
                    *rest = tail;
                    Some(head)
                }
                Err(_) if rest.is_empty_list() => None,
                Err(_) => return Err(" is an improper list".to_owned().into()),
            },
            TermIter::Tuple(env, elems, i) => {
                let elem = elems.get(*i).map(|raw| {
                    // SAFETY: an element of a tuple in `env`.
                    unsafe { Term::new(*env, *raw) }
                });
                *i += 1;
                elem
            }
            TermIter::Map(_, pending @ Some(_)) => pending.take(),
            TermIter::Map(pairs, pending) => pairs.next().map(|(k, v)| {
                *pending = Some(v);
                k
            }),
        })
    }
}

fn no_python_form(what: &str) -> Failure<OverBudget> {
    Failure::At(format!(" is a {what}, which has no Python form"))
}

/// An atom's text. NIF 2.16 (OTP 25) reads atoms as Latin-1 only; an atom with other
/// characters (`:"héllo_🙂"`) is read from its external format, which holds UTF-8.
fn atom_name(term: Term<'_>) -> Option<String> {
    if let Ok(name) = term.atom_to_string() {
        return Some(name);
    }
    let external = term.to_binary();
    let bytes = external.as_slice();
    let text = match bytes {
        // ATOM_UTF8_EXT: 2-byte length; SMALL_ATOM_UTF8_EXT: 1-byte length.
        [131, 118, hi, lo, rest @ ..] => rest.get(..usize::from(*hi) << 8 | usize::from(*lo))?,
        [131, 119, len, rest @ ..] => rest.get(..usize::from(*len))?,
        _ => return None,
    };
    String::from_utf8(text.to_vec()).ok()
}

/// Builds the Erlang term for a value. Fails only for a value deeper than any reader
/// produces.
pub fn encode<'a>(env: Env<'a>, value: &Value) -> Result<Term<'a>, String> {
    walk_write(&mut TermWriter { env }, value, "result", MAX_FRAMING)
}

struct TermWriter<'a> {
    env: Env<'a>,
}

impl<'a> Writer for TermWriter<'a> {
    type Out = Term<'a>;

    fn leaf(&mut self, value: &Value) -> Result<Term<'a>, String> {
        let env = self.env;
        Ok(match value {
            Value::Nil => crate::atoms::nil().encode(env),
            Value::Bool(b) => b.encode(env),
            Value::Int(i) => i.encode(env),
            Value::BigInt(digits) => match digits.parse::<rustler::BigInt>() {
                Ok(big) => big.encode(env),
                Err(_) => digits.encode(env),
            },
            Value::Float(f) => f.encode(env),
            Value::Str(s) => s.encode(env),
            Value::Atom(name) => make_atom(env, name),
            // Python hands back what it was given: the function is copied to the message.
            Value::Handle(handle) => match handle.downcast_ref::<ResourceArc<FunHandle>>() {
                Some(fun) => fun.load(env),
                None => crate::atoms::nil().encode(env),
            },
            Value::List(_) | Value::Tuple(_) | Value::Map(_) => {
                unreachable!("the walker builds containers")
            }
        })
    }

    fn list(&mut self, items: Vec<Term<'a>>) -> Result<Term<'a>, String> {
        Ok(items.encode(self.env))
    }

    fn tuple(&mut self, items: Vec<Term<'a>>) -> Result<Term<'a>, String> {
        Ok(make_tuple(self.env, &items))
    }

    fn map(&mut self, pairs: Vec<(Term<'a>, Term<'a>)>) -> Result<Term<'a>, String> {
        let env = self.env;
        // OTP 25's enif_make_map_from_arrays crashes the VM for a large (hashed, over 32
        // keys) map built in a process-independent environment, as replies are; large
        // maps are built key by key instead (reproduced: 100 keys fine, 500 segfault).
        if pairs.len() <= 32 {
            let (keys, values): (Vec<_>, Vec<_>) = pairs.iter().copied().unzip();
            if let Ok(map) = Term::map_from_term_arrays(env, &keys, &values) {
                return Ok(map);
            }
        }
        // Duplicate keys (two Python keys with one Erlang form) make map_from_arrays fail:
        // later keys win, as in Map.new/1.
        Ok(pairs.into_iter().fold(Term::map_new(env), |map, (k, v)| {
            map.map_put(k, v).unwrap_or(map)
        }))
    }
}

/// An atom named `name`; text instead if no atom can have that name (over 255 characters).
fn make_atom<'a>(env: Env<'a>, name: &str) -> Term<'a> {
    if let Ok(atom) = Atom::from_str(env, name) {
        return atom.encode(env);
    }
    // Beyond Latin-1: NIF 2.16 cannot make the atom, the external format can (ATOM_UTF8_EXT).
    if name.chars().count() <= 255 {
        let len = name.len() as u16;
        let mut external = vec![131, 118, (len >> 8) as u8, len as u8];
        external.extend_from_slice(name.as_bytes());
        if let Some((atom, _)) = env.binary_to_term(&external) {
            return atom;
        }
    }
    name.encode(env)
}
