//! dspex_runtime: one embedded CPython running DSPy for the BEAM, without the BEAM.
//!
//! Nothing here calls the Erlang NIF API, so it is tested with plain `cargo test` against
//! the real interpreter; the `dspex_native` crate is the thin NIF surface on top.
//!
//! - [`bootstrap`]: starting CPython in the right environment, on its own thread;
//! - [`pool`]: the worker threads and their queues;
//! - [`session`]: a session's identity and its Python object;
//! - [`job`]: units of work and the cancellation gate;
//! - [`value`] / [`pycodec`]: the data that crosses, and its Python form;
//! - [`walk`]: explicit-stack walks over nested data, in both directions.

pub mod bootstrap;
pub mod callbacks;
pub mod config;
pub mod error;
pub mod job;
pub mod pool;
pub mod pycodec;
pub mod session;
pub mod trace;
pub mod value;
pub mod walk;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use pyo3::prelude::*;

pub use config::Config;
pub use error::Error;
pub use job::{Cancelled, Deliver, Gate, Job, Target};
pub use pool::{Pool, PoolStats, Status};
pub use session::SessionCell;
pub use value::{Handle, Value};

/// The Python the NIF was built against (`PYO3_PYTHON` at build time).
pub const BUILD_PYTHON: &str = env!("DSPEX_BUILD_PYTHON");

static POOL: OnceLock<Pool> = OnceLock::new();

/// Starts the runtime once per process and returns at once; Python starts on a thread of
/// its own. Later calls return the running pool and ignore their config (one interpreter
/// per process).
pub fn start(config: Config) -> &'static Pool {
    let mut fresh = None;
    let pool = POOL.get_or_init(|| {
        trace::init(config.trace.as_deref());
        fresh = Some(config.clone());
        Pool::new(
            config.workers,
            config.max_workers,
            config.queue_size,
            config.test_hooks,
        )
    });
    if let Some(config) = fresh {
        std::thread::Builder::new()
            .name("dspex-python".into())
            .spawn(move || python_main(pool, config))
            .expect("spawning the dspex Python thread");
    }
    pool
}

/// Records that the runtime cannot start (a bad configuration): every call then gets
/// `:not_started` with `why`. Does nothing if the runtime was already started.
pub fn start_failed(why: String) -> &'static Pool {
    POOL.get_or_init(|| {
        let pool = Pool::new(1, 1, 1, false);
        pool.set_status(Status::Failed(why));
        pool
    })
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
    op: &str,
    args: Value,
    deliver: Deliver,
    callback: Option<callbacks::Callback>,
) -> Result<Arc<Gate>, Error> {
    let gate = Gate::new();
    running()?.submit(Job {
        target,
        op: op.to_owned(),
        args,
        gate: gate.clone(),
        deliver,
        callback,
    })?;
    Ok(gate)
}

/// Opens a session; `deliver` gets `Ok(Nil)` once its Python side exists.
pub fn open_session(
    name: String,
    lm: Value,
    deliver: Deliver,
) -> Result<(Arc<SessionCell>, Arc<Gate>), Error> {
    let pool = running()?;
    let cell = Arc::new(SessionCell::new(pool.next_session_id(), name, pool));
    let gate = submit(Target::Open(cell.clone()), "open", lm, deliver, None)?;
    Ok((cell, gate))
}

/// Runs `op` on a session (`execute`, `create_program`, ...). With `callback`, Python
/// code in the job (tools, metrics) can call the caller back.
pub fn call(
    cell: &Arc<SessionCell>,
    op: &str,
    args: Value,
    deliver: Deliver,
    callback: Option<callbacks::Callback>,
) -> Result<Arc<Gate>, Error> {
    if cell.is_closed() {
        return Err(Error::closed(cell.label()));
    }
    submit(Target::Session(cell.clone()), op, args, deliver, callback)
}

/// Runs a call that belongs to no session (`ping`, `stats`).
pub fn global_call(op: &str, args: Value, deliver: Deliver) -> Result<Arc<Gate>, Error> {
    submit(Target::Global, op, args, deliver, None)
}

/// The Python runtime's main thread: starts the interpreter, then stays alive so that
/// Python's notion of its main thread stays valid (signal handling lives there).
fn python_main(pool: &'static Pool, config: Config) {
    let span = tracing::info_span!("startup");
    let entered = span.enter();
    let started = std::time::Instant::now();
    let engine = boot(&config);
    let warm = match engine {
        Ok((engine, bridge)) => {
            pool.set_engine(engine);
            pool.set_status(Status::Ready);
            tracing::info!(
                millis = started.elapsed().as_millis() as u64,
                "Python ready"
            );
            Some(bridge)
        }
        Err(why) => {
            tracing::error!(error = why.as_str(), "Python failed to start");
            pool.set_status(Status::Failed(why));
            None
        }
    };
    // Workers also run in the failed state: they answer queued jobs with :not_started.
    pool.spawn_workers();
    // Interrupts must not wait for the warm-up below.
    std::thread::Builder::new()
        .name("dspex-control".into())
        .spawn(move || pool.serve_control())
        .expect("spawning the dspex control thread");
    drop(entered);
    if let (Some(bridge), true) = (warm, config.warm) {
        Python::attach(|py| {
            if let Err(e) = bridge.bind(py).call_method0("warm") {
                tracing::warn!(error = %e, "warming the LM client failed");
            }
        });
        tracing::info!("LM client stack imported");
    }
    // Python's main thread must live on: signal handling belongs to it.
    loop {
        std::thread::park();
    }
}

fn boot(config: &Config) -> Result<(pool::Engine, Py<PyModule>), String> {
    let python = config
        .python
        .clone()
        .unwrap_or_else(|| PathBuf::from(BUILD_PYTHON));
    let env = config::resolve_python(&python)?;
    let libpython = bootstrap::promote_libpython()?;
    let linked = bootstrap::linked_version();
    tracing::info!(libpython, python = %env.executable.display(), "starting Python");
    match &env.version {
        Some(v) => config::check_version(v, &linked)?,
        None => {
            return Err(format!(
                "{} has no pyvenv.cfg: point DSPEX_PYTHON at a venv made by Python {}",
                env.prefix.display(),
                linked.split_whitespace().next().unwrap_or("")
            ))
        }
    }
    bootstrap::disable_openssl_atexit();
    bootstrap::initialize(&env)?;
    Python::attach(|py| {
        let bridge = bootstrap::import_bridge(py, &env, &config.bridge_path)?;
        let get = |name: &str| {
            bridge
                .getattr(name)
                .map(Bound::unbind)
                .map_err(|e| format!("dspex_bridge.{name} is missing: {e}"))
        };
        let engine = pool::Engine {
            open_session: get("open_session")?,
            call: get("call")?,
            release: get("release")?,
            global_call: get("global_call")?,
            atom: get("Atom")?,
            cancelled: get("Cancelled")?,
        };
        let call_elixir = callbacks::python_callable(py, engine.atom.clone_ref(py))
            .map_err(|e| format!("creating _call_elixir failed: {e}"))?;
        bridge
            .setattr("_call_elixir", call_elixir)
            .map_err(|e| format!("installing _call_elixir failed: {e}"))?;
        let notify = callbacks::python_notifier(py, engine.atom.clone_ref(py))
            .map_err(|e| format!("creating _notify_elixir failed: {e}"))?;
        bridge
            .setattr("_notify_elixir", notify)
            .map_err(|e| format!("installing _notify_elixir failed: {e}"))?;
        let options = pyo3::types::PyDict::new(py);
        let set = |k: &str, v: Bound<'_, PyAny>| options.set_item(k, v);
        set(
            "test_hooks",
            pyo3::types::PyBool::new(py, config.test_hooks)
                .to_owned()
                .into_any(),
        )
        .and_then(|()| {
            set(
                "history_size",
                config.history_size.into_pyobject(py)?.into_any(),
            )
        })
        .and_then(|()| bridge.call_method1("setup", (options.clone(),)).map(drop))
        .map_err(|e| format!("dspex_bridge.setup failed: {e}"))?;
        Ok((engine, bridge.unbind()))
    })
}
