//! dspex_runtime: one embedded CPython running DSPy for the BEAM, without the BEAM.
//!
//! Nothing here calls the Erlang NIF API, so it is tested with plain `cargo test` against
//! the real interpreter; the `dspex_native` crate is the thin NIF surface on top. The
//! modules are internal; this file re-exports what that crate and the tests use.
//!
//! Layers, each depending only on those above it (tests/module_graph.rs checks it):
//! - [`value`] / [`walk`] / [`pycodec`]: the data that crosses, its walks, its Python form;
//! - [`error`] / [`op`]: the protocol's reasons and operations, declared once;
//! - [`gate`] / [`callbacks`] / [`releases`] / [`session`] / [`job`]: a job, its gate, its
//!   way back to the caller, and a session that hands its object to the release queue;
//! - [`thread_state`] / [`bridge`]: the CPython FFI the threads need, and how a job calls
//!   into Python;
//! - [`queue`] / [`pool`] / [`workers`] / [`control`] / [`startup`]: the queues and counters, the
//!   threads that serve them, and start-up;
//! - [`events`] / [`trace`]: what the runtime reports outside any job (ready, warm, the
//!   pool growing or shrinking, trace lines), for a subscriber.

mod bootstrap;
mod bridge;
mod callbacks;
mod config;
mod control;
mod error;
mod events;
mod gate;
mod job;
mod op;
mod pool;
mod pycodec;
mod queue;
mod releases;
mod session;
mod startup;
mod thread_state;
mod trace;
mod value;
mod walk;
mod workers;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use callbacks::{answer_request, Answer, Outbound, ToCaller};
pub use config::Config;
pub use error::{Error, Reason};
pub use events::{
    report_lm_calls, subscribe as subscribe_events, take as take_events, Event, Level, Ready, Sink,
    Taken,
};
pub use gate::{Cancelled, Deliver, Gate, GateState, Timing};
pub use op::{GlobalOp, Op};
pub use pool::{Pool, PoolStats, Status};
pub use session::SessionCell;
pub use value::{Handle, Value, MAX_BIG_DIGITS, MAX_DEPTH, MAX_FRAMING};
pub use walk::{read as walk_read, write as walk_write, Failure, Node, ReadError, Reader, Writer};

use job::{Job, Target};

static POOL: OnceLock<Pool> = OnceLock::new();

/// Starts the runtime once per process and returns at once; Python starts on a thread of
/// its own. What can be checked without Python is checked first, so a bad setting fails
/// the start and leaves nothing running: the settings, the environment (it exists, was made
/// by the linked Python, has dspy). A later call returns the running pool; it keeps the
/// running settings and refuses another environment (one interpreter per process).
pub fn start(config: Config) -> Result<&'static Pool, String> {
    static STARTED_IN: OnceLock<PathBuf> = OnceLock::new();
    if let Some(pool) = POOL.get() {
        return same_environment(&config, STARTED_IN.get()).map(|()| pool);
    }
    let env = startup::environment(&config)?;
    let mut fresh = None;
    let pool = POOL.get_or_init(|| {
        trace::init(config.trace.as_deref());
        let _ = STARTED_IN.set(env.prefix.clone());
        fresh = Some(config.clone());
        Pool::new(
            config.workers,
            config.max_workers,
            config.queue_size,
            config.test_hooks,
        )
    });
    match fresh {
        Some(config) => {
            std::thread::Builder::new()
                .name("dspex-python".into())
                .spawn(move || startup::python_main(pool, config, env))
                .map_err(|e| format!("cannot spawn the Python thread: {e}"))?;
            Ok(pool)
        }
        // Lost a race with another first start.
        None => same_environment(&config, STARTED_IN.get()).map(|()| pool),
    }
}

fn same_environment(config: &Config, running: Option<&PathBuf>) -> Result<(), String> {
    let (Some(given), Some(running)) = (&config.python, running) else {
        return Ok(());
    };
    let given = config::resolve_python(given)?.prefix;
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    if canonical(&given) == canonical(running) {
        Ok(())
    } else {
        Err(format!(
            "Python already runs from {} in this BEAM, and one OS process holds one \
             interpreter; {} can only be used by another BEAM",
            running.display(),
            given.display()
        ))
    }
}

/// The running pool, if [`start`] was called.
pub fn pool() -> Option<&'static Pool> {
    POOL.get()
}

fn running() -> Result<&'static Pool, Error> {
    pool().ok_or_else(|| Error::not_started("the dspex_native application is not started"))
}

fn submit(
    target: Target,
    args: Value,
    deliver: Deliver,
    to_caller: Option<ToCaller>,
) -> Result<Arc<Gate>, Error> {
    let gate = Gate::new();
    running()?.submit(Job {
        target,
        args,
        gate: gate.clone(),
        deliver,
        to_caller,
        enqueued: std::time::Instant::now(),
    })?;
    Ok(gate)
}

/// Opens a session; `deliver` gets `Ok(Nil)` once its Python side exists.
pub fn open_session(
    name: String,
    lm: Value,
    deliver: Deliver,
) -> Result<(Arc<SessionCell>, Arc<Gate>), Error> {
    let (id, releaser, live) = running()?.session_parts();
    let cell = Arc::new(SessionCell::new(id, name, releaser, live));
    let gate = submit(Target::Open(cell.clone()), lm, deliver, None)?;
    Ok((cell, gate))
}

/// Queues `op` on a session. With `to_caller`, Python code in the job (tools, metrics,
/// output) can reach the caller.
pub fn submit_session_op(
    cell: &Arc<SessionCell>,
    op: Op,
    args: Value,
    deliver: Deliver,
    to_caller: Option<ToCaller>,
) -> Result<Arc<Gate>, Error> {
    if cell.is_closed() {
        return Err(Error::closed(cell.label()));
    }
    submit(Target::Session(cell.clone(), op), args, deliver, to_caller)
}

/// Queues an operation that belongs to no session (`ping`, `stats`).
pub fn submit_global_op(op: GlobalOp, args: Value, deliver: Deliver) -> Result<Arc<Gate>, Error> {
    submit(Target::Global(op), args, deliver, None)
}
