//! The NIF surface: decode arguments, queue a job, return. No function here takes the GIL
//! or waits for Python; answers arrive as `{tag, {:ok, value} | {:error, error}}` messages
//! sent by a worker, where `tag` is a reference the caller made.
//!
//! Functions that take a term of unbounded size come in two flavours (declared once with
//! `twin_nifs!`): the normal one decodes on a budget and answers `:dirty` when the term is
//! too big, and the `_dirty` one (on a dirty CPU scheduler) decodes anything. Elixir calls
//! the second after the first. Operation names are decoded here, once, into `Op` /
//! `GlobalOp`: an unknown one is refused before anything is queued.

use std::sync::Arc;

use rustler::env::OwnedEnv;
use rustler::{Encoder, Env, LocalPid, NifResult, ResourceArc, Term};

use dspex_runtime::{
    Cancelled, Deliver, Error, Gate, GlobalOp, Op, Reason, Status, Value, MAX_FRAMING,
};

use crate::atoms;
use crate::callbacks::to_caller;
use crate::resource::{JobResource, RefHandle, RemoteHandle, SessionResource};
use crate::term_codec::{decode, encode, Decode};

/// Why a call was not queued.
enum Refused {
    Error(Error),
    /// Too big for a normal scheduler: retry with the `_dirty` variant.
    TooBig,
}

impl From<Error> for Refused {
    fn from(err: Error) -> Self {
        Refused::Error(err)
    }
}

/// `{reason, message, python_type, traceback}`, the shape `DSPex.Native.Error` is built from.
fn encode_error<'a>(env: Env<'a>, err: &Error) -> Term<'a> {
    let reason = rustler::Atom::from_str(env, err.reason.name()).unwrap_or(atoms::error());
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

fn refused<'a>(env: Env<'a>, refused: Refused) -> Term<'a> {
    match refused {
        Refused::Error(err) => error_reply(env, &err),
        Refused::TooBig => atoms::dirty().encode(env),
    }
}

/// A deliver function that messages the calling process
/// `{tag, result, queue_ms, python_ms}` (see `dspex_runtime::Timing`).
fn reply_to(env: Env<'_>, tag: Term<'_>) -> Deliver {
    let pid: LocalPid = env.pid();
    let mut owned = OwnedEnv::new();
    let saved = owned.save(tag);
    Box::new(move |result, timing| {
        // A dead caller is not an error: its answer simply has nowhere to go.
        let _ = owned.send_and_clear(&pid, |env| {
            let body = match result.as_ref().map(|value| encode(env, value)) {
                Ok(Ok(term)) => (atoms::ok(), term).encode(env),
                Ok(Err(message)) => error_reply(env, &Error::internal(message)),
                Err(err) => error_reply(env, err),
            };
            (saved.load(env), body, timing.queue_ms, timing.python_ms)
        });
    })
}

/// Decodes a session call's argument, whose user values sit up to MAX_FRAMING levels down
/// (`arguments.inputs.question`).
fn argument(term: Term<'_>, path: &str, budget: Option<usize>) -> Result<Value, Refused> {
    framed(term, path, budget, MAX_FRAMING)
}

fn framed(
    term: Term<'_>,
    path: &str,
    budget: Option<usize>,
    framing: usize,
) -> Result<Value, Refused> {
    decode(term, path, budget, framing).map_err(|e| match e {
        Decode::Invalid(message) => Refused::Error(Error::invalid_argument(message)),
        Decode::TooBig => Refused::TooBig,
    })
}

fn job<'a>(env: Env<'a>, result: Result<Arc<Gate>, Refused>) -> Term<'a> {
    match result {
        Ok(gate) => (atoms::ok(), ResourceArc::new(JobResource { gate })).encode(env),
        Err(r) => refused(env, r),
    }
}

// -- lifecycle --------------------------------------------------------------------------

/// Starts the runtime (once per BEAM) and returns at once while Python boots on its own
/// thread. A bad setting is an error and leaves nothing running. After `stop/0`, starting
/// again only accepts calls again (same interpreter).
#[rustler::nif]
fn start<'a>(env: Env<'a>, config: Term<'a>) -> Term<'a> {
    let started = decode(config, "config", None, MAX_FRAMING)
        .map_err(|e| match e {
            Decode::Invalid(message) => Error::invalid_argument(message),
            Decode::TooBig => Error::invalid_argument("config is too big"),
        })
        .and_then(|v| crate::config::from_value(&v))
        .and_then(|config| {
            dspex_runtime::start(config).map_err(|why| {
                Error::new(
                    Reason::NotStarted,
                    format!("cannot start the Python runtime: {why}"),
                )
            })
        });
    match started {
        Ok(pool) => {
            pool.set_accepting(true);
            atoms::ok().encode(env)
        }
        Err(err) => error_reply(env, &err),
    }
}

/// Refuses new calls (`:not_started`); queued and running jobs finish and answer.
#[rustler::nif]
fn stop() -> rustler::Atom {
    if let Some(pool) = dspex_runtime::pool() {
        pool.set_accepting(false);
    }
    atoms::ok()
}

/// `:idle` (never started, or stopped), `:starting`, `:ready` or `{:failed, message}`.
#[rustler::nif]
fn status(env: Env<'_>) -> Term<'_> {
    let pool = dspex_runtime::pool();
    match pool.map(|p| (p.status(), p.is_accepting())) {
        None => atoms::idle().encode(env),
        // Stopped (Application.stop): calls are refused as if it had never started.
        Some((Status::Starting | Status::Ready, false)) => atoms::idle().encode(env),
        Some((Status::Starting, _)) => atoms::starting().encode(env),
        Some((Status::Ready, _)) => atoms::ready().encode(env),
        Some((Status::Failed(why), _)) => (atoms::failed(), why).encode(env),
    }
}

// -- sessions ---------------------------------------------------------------------------

fn open<'a>(
    env: Env<'a>,
    name: Term<'a>,
    lm: Term<'a>,
    owner: Term<'a>,
    tag: Term<'a>,
    budget: Option<usize>,
) -> Term<'a> {
    let result = (|| {
        let name = match &mut argument(name, "name", budget)? {
            Value::Str(s) => std::mem::take(s),
            Value::Nil => String::new(),
            other => {
                return Err(Error::invalid_argument(format!(
                    "name must be a string, got {}",
                    other.describe(64)
                ))
                .into())
            }
        };
        let owner: Option<LocalPid> = if owner.is_atom() {
            None
        } else {
            Some(
                owner
                    .decode()
                    .map_err(|_| Error::invalid_argument("owner must be a local pid (or nil)"))?,
            )
        };
        let lm = argument(lm, "lm", budget)?;
        let (cell, gate) = dspex_runtime::open_session(name, lm, reply_to(env, tag))?;
        let session = ResourceArc::new(SessionResource::new(cell));
        if let Some(pid) = owner {
            // A monitor on an owner that is already dead: the session is closed at once.
            if session.monitor(Some(env), &pid).is_none() {
                session.cell.close();
            }
        }
        Ok((session, gate))
    })();
    match result {
        Ok((session, gate)) => {
            (atoms::ok(), session, ResourceArc::new(JobResource { gate })).encode(env)
        }
        Err(r) => refused(env, r),
    }
}

twin_nifs! {
    /// Opens a session: `{:ok, session, job}`; the job answers once Python has it.
    fn session_open / session_open_dirty <'a>(
        env,
        name: Term<'a>,
        lm: Term<'a>,
        owner: Term<'a>,
        tag: Term<'a>,
    ) = open(env, name, lm, owner, tag)
}

fn submit_session_op<'a>(
    env: Env<'a>,
    session: ResourceArc<SessionResource>,
    op: String,
    arguments: Term<'a>,
    tag: Term<'a>,
    budget: Option<usize>,
) -> Term<'a> {
    let result = Op::from_name(&op)
        .map_err(Refused::from)
        .and_then(|op| Ok((op, argument(arguments, "arguments", budget)?)))
        .and_then(|(op, args)| {
            // Only jobs that run user programs may reach the caller while they run.
            let to_caller = op.runs_user_code().then(|| to_caller(env, tag));
            Ok(dspex_runtime::submit_session_op(
                &session.cell,
                op,
                args,
                reply_to(env, tag),
                to_caller,
            )?)
        });
    job(env, result)
}

twin_nifs! {
    /// Queues a session operation (`"execute"`, ...): `{:ok, job}`.
    fn session_call / session_call_dirty <'a>(
        env,
        session: ResourceArc<SessionResource>,
        op: String,
        arguments: Term<'a>,
        tag: Term<'a>,
    ) = submit_session_op(env, session, op, arguments, tag)
}

fn submit_global_op<'a>(
    env: Env<'a>,
    op: String,
    arguments: Term<'a>,
    tag: Term<'a>,
    budget: Option<usize>,
) -> Term<'a> {
    // Global operations (ping) carry the user's value as it is: no framing.
    let result = GlobalOp::from_name(&op)
        .map_err(Refused::from)
        .and_then(|op| Ok((op, framed(arguments, "arguments", budget, 0)?)))
        .and_then(|(op, args)| {
            Ok(dspex_runtime::submit_global_op(
                op,
                args,
                reply_to(env, tag),
            )?)
        });
    job(env, result)
}

twin_nifs! {
    /// Queues an operation that belongs to no session (`"ping"`, `"stats"`): `{:ok, job}`.
    fn global_call / global_call_dirty <'a>(
        env,
        op: String,
        arguments: Term<'a>,
        tag: Term<'a>,
    ) = submit_global_op(env, op, arguments, tag)
}

/// Closes a session; idempotent. Its Python objects are released by the pool.
#[rustler::nif]
fn session_close(session: ResourceArc<SessionResource>) -> rustler::Atom {
    session.cell.close();
    atoms::ok()
}

/// `{id, name}` of a session just opened, read without Python.
#[rustler::nif]
fn session_meta(session: ResourceArc<SessionResource>) -> (u64, String) {
    (session.cell.id, session.cell.name.clone())
}

/// The handle of a `%Ref{}` to object `number` of `session` (see `RefHandle`).
#[rustler::nif]
fn ref_handle(session: ResourceArc<SessionResource>, number: u64) -> ResourceArc<RefHandle> {
    ResourceArc::new(RefHandle {
        cell: session.cell.clone(),
        number,
    })
}

/// Gives up on a job: `:cancelled` (it will never answer), `:running_cancelled` (it was
/// running: it is interrupted and its answer dropped) or `:sent` (the answer is already in
/// the caller's mailbox).
#[rustler::nif]
fn job_cancel(job: ResourceArc<JobResource>) -> rustler::Atom {
    match job.cancel() {
        Cancelled::Stopped { was_running: false } => atoms::cancelled(),
        Cancelled::Stopped { was_running: true } => atoms::running_cancelled(),
        Cancelled::AlreadySent => atoms::sent(),
    }
}

/// Jobs queued or running, read without the GIL (0 before the runtime starts).
#[rustler::nif]
fn pool_load() -> usize {
    dspex_runtime::pool().map_or(0, |pool| pool.load())
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
        .map_put("max_workers", s.max_workers)?
        .map_put("workers_alive", s.workers_alive)?
        .map_put("workers_idle", s.workers_idle)?
        .map_put("queued", s.queued)?
        .map_put("releases_queued", s.releases_queued)?
        .map_put("sessions", s.sessions)?
        .map_put("jobs_done", s.jobs_done)?
        .map_put("jobs_cancelled", s.jobs_cancelled)?
        .map_put("releases_done", s.releases_done)?;
    Ok(map)
}

/// Whether the runtime was started with `test_hooks: true`; test-only NIFs refuse
/// otherwise.
fn test_hooks_on() -> Result<(), Error> {
    match dspex_runtime::pool() {
        Some(pool) if pool.test_hooks() => Ok(()),
        _ => Err(Error::invalid_argument(
            "a test hook: start the runtime with test_hooks: true",
        )),
    }
}

/// Test hook: a panic on a scheduler thread, which must reach the caller as an error.
#[rustler::nif]
fn test_panic(env: Env<'_>) -> Term<'_> {
    match test_hooks_on() {
        Ok(()) => panic!("test_panic: a deliberate panic in a NIF"),
        Err(err) => error_reply(env, &err),
    }
}

/// Test hook: the protocol as Rust declares it, for the contract test that Elixir, the
/// README, Rust and Python agree: `{:ok, %{ops: [...], user_code_ops: [...],
/// global_ops: [...], reasons: [atom], time_unit: :millisecond}}` (operation names are
/// strings, as Elixir sends them; times cross as float milliseconds).
#[rustler::nif]
fn protocol(env: Env<'_>) -> NifResult<Term<'_>> {
    if let Err(err) = test_hooks_on() {
        return Ok(error_reply(env, &err));
    }
    let reasons: Vec<rustler::Atom> = Reason::ALL
        .iter()
        .map(|r| rustler::Atom::from_str(env, r.name()))
        .collect::<NifResult<_>>()?;
    let map = rustler::types::map::map_new(env)
        .map_put(
            atoms::ops(),
            Op::ALL.iter().map(|op| op.name()).collect::<Vec<_>>(),
        )?
        .map_put(
            atoms::user_code_ops(),
            Op::ALL
                .iter()
                .filter(|op| op.runs_user_code())
                .map(|op| op.name())
                .collect::<Vec<_>>(),
        )?
        .map_put(
            atoms::global_ops(),
            GlobalOp::ALL.iter().map(|op| op.name()).collect::<Vec<_>>(),
        )?
        .map_put(atoms::reasons(), reasons)?
        .map_put(atoms::time_unit(), atoms::millisecond())?;
    Ok((atoms::ok(), map).encode(env))
}

/// A handle to session `id` living on `node`; collecting it tells that node.
#[rustler::nif]
fn remote_handle(node: String, id: u64) -> ResourceArc<RemoteHandle> {
    ResourceArc::new(RemoteHandle { node, id })
}

/// `{node, id}` of a remote handle.
#[rustler::nif]
fn remote_handle_info(handle: ResourceArc<RemoteHandle>) -> (String, u64) {
    (handle.node.clone(), handle.id)
}
