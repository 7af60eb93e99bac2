//! Erlang terms to bridge values and back.
//!
//! Decoding runs on the calling scheduler (terms belong to the caller's environment) and
//! needs no GIL; a term with no Python form is refused with a message that names where in
//! the argument it sits (`inputs.question`, `inputs[2]`).
//!
//! On a normal scheduler decoding runs on a budget: a term too big to copy within about a
//! millisecond is reported as [`Decode::TooBig`], and the caller retries on a dirty CPU
//! scheduler, where there is no limit.

use rustler::types::tuple::{get_tuple, make_tuple};
use rustler::{Atom, Encoder, Env, Term, TermType};

use dspex_runtime::value::{Value, MAX_BIG_DIGITS, MAX_DEPTH};

/// Work a normal scheduler may do decoding one argument: one unit per term, plus one per
/// 32 bytes of binary (about 20,000 terms or 640 KB, well under a millisecond).
pub const NORMAL_BUDGET: usize = 20_000;

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
pub fn decode(term: Term<'_>, path: &str, budget: Option<usize>) -> Result<Value, Decode> {
    let mut left = budget.unwrap_or(usize::MAX);
    decode_at(term, path, 1, &mut left)
}

fn spend(left: &mut usize, units: usize) -> Result<(), Decode> {
    *left = left.checked_sub(units).ok_or(Decode::TooBig)?;
    Ok(())
}

fn decode_at(term: Term<'_>, path: &str, depth: usize, left: &mut usize) -> Result<Value, Decode> {
    if depth > MAX_DEPTH {
        return Err(format!("{path} nests deeper than {MAX_DEPTH} levels").into());
    }
    spend(left, 1)?;
    match term.get_type() {
        TermType::Atom => {
            let name = term
                .atom_to_string()
                .map_err(|_| format!("{path}: unreadable atom"))?;
            Ok(match name.as_str() {
                "nil" => Value::Nil,
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::Atom(name),
            })
        }
        TermType::Binary => {
            let bin = term
                .decode_as_binary()
                .map_err(|_| format!("{path} is a bitstring, not a binary"))?;
            spend(left, bin.len() / 32)?;
            Ok(std::str::from_utf8(bin.as_slice())
                .map(|s| Value::Str(s.to_owned()))
                .map_err(|e| format!("{path} is a binary that is not valid UTF-8 ({e})"))?)
        }
        TermType::Integer => {
            if let Ok(n) = term.decode::<i64>() {
                return Ok(Value::Int(n));
            }
            let big: rustler::BigInt = term
                .decode()
                .map_err(|_| format!("{path}: unreadable integer"))?;
            let digits = big.to_string();
            spend(left, digits.len() / 32)?;
            if digits.trim_start_matches('-').len() > MAX_BIG_DIGITS {
                return Err(
                    format!("{path} is an integer of more than {MAX_BIG_DIGITS} digits").into(),
                );
            }
            Ok(Value::BigInt(digits))
        }
        TermType::Float => Ok(term
            .decode::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("{path}: unreadable float"))?),
        TermType::List => {
            let mut items = Vec::new();
            let mut rest = term;
            while let Ok((head, tail)) = rest.list_get_cell() {
                let at = format!("{path}[{}]", items.len());
                items.push(decode_at(head, &at, depth + 1, left)?);
                rest = tail;
            }
            if !rest.is_empty_list() {
                return Err(format!("{path} is an improper list").into());
            }
            Ok(Value::List(items))
        }
        TermType::Tuple => {
            let elems = get_tuple(term).map_err(|_| format!("{path}: unreadable tuple"))?;
            elems
                .into_iter()
                .enumerate()
                .map(|(i, t)| decode_at(t, &format!("{path}{{{i}}}"), depth + 1, left))
                .collect::<Result<_, _>>()
                .map(Value::Tuple)
        }
        TermType::Map => {
            let iter = rustler::types::map::MapIterator::new(term)
                .ok_or_else(|| format!("{path}: unreadable map"))?;
            let mut pairs = Vec::new();
            for (k, v) in iter {
                let key = decode_at(k, &format!("{path} key"), depth + 1, left)?;
                let at = match &key {
                    Value::Str(s) | Value::Atom(s) => format!("{path}.{s}"),
                    other => format!("{path}[{other:?}]"),
                };
                pairs.push((key, decode_at(v, &at, depth + 1, left)?));
            }
            Ok(Value::Map(pairs))
        }
        other => Err(Decode::Invalid(format!(
            "{path} is a {}, which has no Python form",
            match other {
                TermType::Pid => "pid",
                TermType::Port => "port",
                TermType::Ref => "reference",
                TermType::Fun => "function",
                _ => "term of unknown type",
            }
        ))),
    }
}

/// Builds the Erlang term for a value.
pub fn encode<'a>(env: Env<'a>, value: &Value) -> Term<'a> {
    match value {
        Value::Nil => crate::atoms::nil().encode(env),
        Value::Bool(b) => b.encode(env),
        Value::Int(i) => i.encode(env),
        Value::BigInt(digits) => match digits.parse::<rustler::BigInt>() {
            Ok(big) => big.encode(env),
            Err(_) => digits.encode(env),
        },
        Value::Float(f) => f.encode(env),
        Value::Str(s) => s.encode(env),
        Value::Atom(name) => Atom::from_str(env, name)
            .map(|a| a.encode(env))
            // Over-long atom names cannot exist; hand the text back instead.
            .unwrap_or_else(|_| name.encode(env)),
        Value::List(items) => items
            .iter()
            .map(|v| encode(env, v))
            .collect::<Vec<_>>()
            .encode(env),
        Value::Tuple(items) => {
            let terms: Vec<Term<'a>> = items.iter().map(|v| encode(env, v)).collect();
            make_tuple(env, &terms)
        }
        Value::Map(pairs) => {
            let keys: Vec<Term<'a>> = pairs.iter().map(|(k, _)| encode(env, k)).collect();
            let values: Vec<Term<'a>> = pairs.iter().map(|(_, v)| encode(env, v)).collect();
            // OTP 25's enif_make_map_from_arrays crashes the VM for a large (hashed, over 32
            // keys) map built in a process-independent environment, as replies are; large
            // maps are built key by key instead (reproduced: 100 keys fine, 500 segfault).
            if pairs.len() <= 32 {
                Term::map_from_term_arrays(env, &keys, &values)
                    .unwrap_or_else(|_| pairs_fallback(env, &keys, &values))
            } else {
                pairs_fallback(env, &keys, &values)
            }
        }
    }
}

// Duplicate keys (two Python keys with one Erlang form) make map_from_arrays fail:
// later keys win, as in Map.new/1.
fn pairs_fallback<'a>(env: Env<'a>, keys: &[Term<'a>], values: &[Term<'a>]) -> Term<'a> {
    keys.iter()
        .zip(values)
        .fold(Term::map_new(env), |map, (k, v)| {
            map.map_put(*k, *v).unwrap_or(map)
        })
}
