//! The NIF side of Python calling back into the BEAM while a job runs: the messages a job
//! sends its caller besides its answer, the functions Python may call (wrapped as
//! `FunHandle`s), and the caller's answers.

use std::sync::Arc;

use rustler::env::OwnedEnv;
use rustler::{Encoder, Env, LocalPid, NifResult, ResourceArc, Term};

use dspex_runtime::{answer_request, Outbound, ToCaller};

use crate::atoms;
use crate::resource::FunHandle;
use crate::term_codec::{decode, encode, Decode};

/// Sends what the job sends besides its answer to the calling process, as declared by
/// `dspex_runtime::Outbound`: `{tag, {:output, payload}}`, and
/// `{tag, {:callback, id, request, timeout_ms}}`, which the caller answers with
/// `callback_reply/2`. The runtime calls this only through the job's gate. Each send
/// builds its message in a fresh environment, copying the tag from one kept for the job's
/// lifetime.
pub(crate) fn to_caller(env: Env<'_>, tag: Term<'_>) -> ToCaller {
    let pid: LocalPid = env.pid();
    let tag_env = OwnedEnv::new();
    let saved = tag_env.save(tag);
    let kept = std::sync::Mutex::new((tag_env, saved));
    Arc::new(move |outbound: Outbound| {
        let kept = kept.lock().unwrap_or_else(|p| p.into_inner());
        let (tag_env, saved) = &*kept;
        let mut message = OwnedEnv::new();
        let _ = message.send_and_clear(&pid, |menv| {
            let tag = tag_env.run(|own| saved.load(own).in_env(menv));
            let body = match &outbound {
                Outbound::Output(payload) => {
                    encode(menv, payload).map(|p| (atoms::output(), p).encode(menv))
                }
                Outbound::Request {
                    id,
                    request,
                    timeout_ms,
                } => encode(menv, request)
                    .map(|r| (atoms::callback(), *id, r, *timeout_ms).encode(menv)),
            };
            // Only a value deeper than any reader produces fails to encode; the caller
            // ignores (and at the end flushes) the `{tag, nil}` sent instead.
            (tag, body.unwrap_or_else(|_| atoms::nil().encode(menv)))
        });
    })
}

/// Wraps an Elixir function for Python to call back (see `FunHandle`). On a dirty
/// scheduler: saving copies the function with everything it captured, of any size.
#[rustler::nif(schedule = "DirtyCpu")]
fn callback_handle(fun: Term<'_>) -> NifResult<ResourceArc<FunHandle>> {
    if fun.get_type() != rustler::TermType::Fun {
        return Err(rustler::Error::BadArg);
    }
    Ok(ResourceArc::new(FunHandle::new(fun)))
}

fn reply_callback(id: u64, answer: Term<'_>, budget: Option<usize>) -> Term<'_> {
    let env = answer.get_env();
    let outcome = match rustler::types::tuple::get_tuple(answer).as_deref() {
        Ok([tag, value]) if tag.atom_to_string().is_ok_and(|t| t == "ok") => {
            // The function's own return value: no framing.
            match decode(*value, "result", budget, 0) {
                Ok(v) => Ok(v),
                Err(Decode::TooBig) => return atoms::dirty().encode(env),
                Err(Decode::Invalid(m)) => Err(format!(
                    "the Elixir function returned a term Python cannot hold: {m}"
                )),
            }
        }
        Ok([tag, message]) if tag.atom_to_string().is_ok_and(|t| t == "error") => Err(message
            .decode::<String>()
            .unwrap_or_else(|_| "the Elixir function failed".into())),
        _ => Err("malformed callback answer".into()),
    };
    let waiting = answer_request(id, outcome);
    waiting.encode(env)
}

twin_nifs! {
    /// Answers callback `id` with `{:ok, term}` or `{:error, message}`; `false` if nobody
    /// waits any more (timed out or cancelled), `:dirty` if the term must be decoded
    /// off-scheduler.
    fn callback_reply / callback_reply_dirty <'a>(id: u64, answer: Term<'a>) = reply_callback(id, answer)
}
