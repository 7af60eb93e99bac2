//! The NIF surface: decode arguments, queue a job, return. No function here takes the GIL
//! or waits for Python; answers arrive as `{tag, {:ok, value} | {:error, error}}` messages
//! sent by a worker, where `tag` is a reference the caller made.

use std::path::PathBuf;

use rustler::env::OwnedEnv;
use rustler::{Encoder, Env, LocalPid, NifResult, ResourceArc, Term};

use dspex_runtime::{Cancelled, Config, Deliver, Error, Status, Value};

use crate::atoms;
use crate::resource::{JobResource, SessionResource};
use crate::term_codec::{decode, encode};

/// `{reason, message, python_type, traceback}`, the shape `DSPex.Native.Error` is built from.
fn encode_error<'a>(env: Env<'a>, err: &Error) -> Term<'a> {
    let reason = rustler::Atom::from_str(env, err.reason).unwrap_or(atoms::error());
    (
        reason,
        err.message.as_str(),
        err.python_type.as_deref(),
        err.traceback.as_deref(),
    )
        .encode(env)
}

fn error_reply<'a>(env: Env<'a>, err: &Error) -> Term<'a> {
    (atoms::error(), encode_error(env, err)).encode(env)
}

/// A deliver function that messages the calling process `{tag, result}`.
fn reply_to(env: Env<'_>, tag: Term<'_>) -> Deliver {
    let pid: LocalPid = env.pid();
    let mut owned = OwnedEnv::new();
    let saved = owned.save(tag);
    Box::new(move |result| {
        // A dead caller is not an error: its answer simply has nowhere to go.
        let _ = owned.send_and_clear(&pid, |env| {
            let body = match &result {
                Ok(value) => (atoms::ok(), encode(env, value)).encode(env),
                Err(err) => error_reply(env, err),
            };
            (saved.load(env), body)
        });
    })
}

fn argument(term: Term<'_>, path: &str) -> Result<Value, Error> {
    decode(term, path).map_err(Error::invalid_argument)
}

fn config_from(value: &Value) -> Result<Config, Error> {
    let mut config = Config::default();
    // Integers may come from the environment as text ("8").
    let positive = |key: &str| match value.get(key) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Int(n)) if *n > 0 => Ok(Some(*n as usize)),
        Some(Value::Str(s)) if s.trim().parse::<usize>().is_ok_and(|n| n > 0) => {
            Ok(s.trim().parse().ok())
        }
        Some(other) => Err(Error::invalid_argument(format!(
            "config {key} must be a positive integer, got {}",
            match other {
                Value::Str(s) => format!("{s:?}"),
                other => format!("{other:?}"),
            }
        ))),
    };
    let text = |key: &str| match value.get(key) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::invalid_argument(format!(
            "config {key} must be a string, got {other:?}"
        ))),
    };
    if let Some(n) = positive("workers")? {
        config.workers = n;
    }
    if let Some(n) = positive("queue_size")? {
        config.queue_size = n;
    }
    config.python = text("python")?.map(PathBuf::from);
    config.trace = text("trace")?;
    if let Some(path) = text("bridge_path")? {
        config.bridge_path = PathBuf::from(path);
    }
    if let Some(Value::Bool(warm)) = value.get("warm") {
        config.warm = *warm;
    }
    Ok(config)
}

/// Starts the runtime (once per BEAM); returns at once while Python boots on its own thread.
#[rustler::nif]
fn start<'a>(env: Env<'a>, config: Term<'a>) -> Term<'a> {
    match argument(config, "config").and_then(|v| config_from(&v)) {
        Ok(config) => {
            dspex_runtime::start(config);
            atoms::ok().encode(env)
        }
        Err(err) => {
            // Every later call reports the bad setting instead of "not started".
            dspex_runtime::start_failed(format!("invalid configuration: {}", err.message));
            error_reply(env, &err)
        }
    }
}

/// `:idle` (never started), `:starting`, `:ready` or `{:failed, message}`.
#[rustler::nif]
fn status(env: Env<'_>) -> Term<'_> {
    match dspex_runtime::pool().map(|p| p.status()) {
        None => atoms::idle().encode(env),
        Some(Status::Starting) => atoms::starting().encode(env),
        Some(Status::Ready) => atoms::ready().encode(env),
        Some(Status::Failed(why)) => (atoms::failed(), why).encode(env),
    }
}

#[rustler::nif]
fn session_open<'a>(env: Env<'a>, name: Term<'a>, lm: Term<'a>, tag: Term<'a>) -> Term<'a> {
    let result = (|| {
        let name = match argument(name, "name")? {
            Value::Str(s) => s,
            Value::Nil => String::new(),
            other => {
                return Err(Error::invalid_argument(format!(
                    "name must be a string, got {other:?}"
                )))
            }
        };
        let lm = argument(lm, "lm")?;
        dspex_runtime::open_session(name, lm, reply_to(env, tag))
    })();
    match result {
        Ok((cell, gate)) => (
            atoms::ok(),
            ResourceArc::new(SessionResource { cell }),
            ResourceArc::new(JobResource { gate }),
        )
            .encode(env),
        Err(err) => error_reply(env, &err),
    }
}

#[rustler::nif]
fn session_call<'a>(
    env: Env<'a>,
    session: ResourceArc<SessionResource>,
    op: String,
    arguments: Term<'a>,
    tag: Term<'a>,
) -> Term<'a> {
    let result = argument(arguments, "arguments")
        .and_then(|args| dspex_runtime::call(&session.cell, &op, args, reply_to(env, tag)));
    job_reply(env, result)
}

#[rustler::nif]
fn global_call<'a>(env: Env<'a>, op: String, arguments: Term<'a>, tag: Term<'a>) -> Term<'a> {
    let result = argument(arguments, "arguments")
        .and_then(|args| dspex_runtime::global_call(&op, args, reply_to(env, tag)));
    job_reply(env, result)
}

fn job_reply<'a>(
    env: Env<'a>,
    result: Result<std::sync::Arc<dspex_runtime::Gate>, Error>,
) -> Term<'a> {
    match result {
        Ok(gate) => (atoms::ok(), ResourceArc::new(JobResource { gate })).encode(env),
        Err(err) => error_reply(env, &err),
    }
}

/// Closes a session; idempotent. Its Python objects are released by the pool.
#[rustler::nif]
fn session_close(session: ResourceArc<SessionResource>) -> rustler::Atom {
    session.cell.close();
    atoms::ok()
}

/// `{id, name, closed?}`, read without Python (for `inspect/1`).
#[rustler::nif]
fn session_meta(session: ResourceArc<SessionResource>) -> (u64, String, bool) {
    let cell = &session.cell;
    (cell.id, cell.name.clone(), cell.is_closed())
}

/// Gives up on a job: `:cancelled` (it will never answer), `:running_cancelled` (it was
/// running; its answer will be dropped) or `:sent` (the answer is already in the mailbox).
#[rustler::nif]
fn job_cancel(job: ResourceArc<JobResource>) -> rustler::Atom {
    match job.gate.cancel() {
        Cancelled::Stopped { was_running: false } => atoms::cancelled(),
        Cancelled::Stopped { was_running: true } => atoms::running_cancelled(),
        Cancelled::AlreadySent => atoms::sent(),
    }
}

/// The pool's counters, read without the GIL.
#[rustler::nif]
fn pool_stats(env: Env<'_>) -> NifResult<Term<'_>> {
    let Some(pool) = dspex_runtime::pool() else {
        return Ok(rustler::types::map::map_new(env));
    };
    let s = pool.stats();
    let map = rustler::types::map::map_new(env)
        .map_put("workers", s.workers)?
        .map_put("workers_alive", s.workers_alive)?
        .map_put("queued", s.queued)?
        .map_put("releases_queued", s.releases_queued)?
        .map_put("sessions", s.sessions)?
        .map_put("jobs_done", s.jobs_done)?
        .map_put("releases_done", s.releases_done)?;
    Ok(map)
}
