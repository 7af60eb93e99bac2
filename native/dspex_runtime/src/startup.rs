//! Start-up on the runtime's own Python thread (`dspex-python`): initialise CPython in the
//! configured venv, import `dspex_bridge`, fill its `hooks` module with the functions that
//! reach the BEAM, then start the workers and the control thread. The thread then stays
//! alive, because it is Python's main thread (signal handling lives there).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyTuple};

use crate::bootstrap;
use crate::bridge::Engine;
use crate::callbacks;
use crate::config::{self, Config, PythonEnv};
use crate::control;
use crate::events::{self, Event, Ready};
use crate::gate::millis;
use crate::pool::{Pool, Status};
use crate::workers;

/// The Python runtime's main thread: starts the interpreter, then stays alive so that
/// Python's notion of its main thread stays valid (signal handling lives there).
pub fn python_main(pool: &'static Pool, config: Config, env: PythonEnv) {
    let span = tracing::info_span!("startup");
    let entered = span.enter();
    let started = Instant::now();
    let warm = match boot(&config, &env) {
        Ok((engine, bridge, mut ready)) => {
            pool.set_engine(engine);
            pool.set_status(Status::Ready);
            ready.total_ms = millis(started.elapsed());
            tracing::debug!(millis = ready.total_ms as u64, "Python ready");
            events::emit(Event::Ready(ready));
            Some(bridge)
        }
        Err(why) => {
            tracing::error!(error = why.as_str(), "Python failed to start");
            pool.set_status(Status::Failed(why));
            None
        }
    };
    // Workers also run in the failed state: they answer queued jobs with :not_started.
    workers::spawn_all(pool);
    // Interrupts must not wait for the warm-up below.
    control::spawn(pool);
    drop(entered);
    if let (Some(bridge), true) = (warm, config.warm) {
        wait_until_quiet(pool);
        let started = Instant::now();
        // `warm()` answers None, or why the import failed.
        let error = Python::attach(|py| {
            bridge
                .bind(py)
                .call_method0("warm")
                .and_then(|why| why.extract::<Option<String>>())
                .unwrap_or_else(|e| Some(e.to_string()))
        });
        let ms = millis(started.elapsed());
        tracing::debug!(
            millis = ms as u64,
            error = error.as_deref(),
            "LM client stack imported"
        );
        events::emit(Event::Warm { millis: ms, error });
    }
    // Python's main thread must live on: signal handling belongs to it.
    loop {
        std::thread::park();
    }
}

/// The pool counts as quiet after this long without taking a job.
const QUIET: Duration = Duration::from_millis(50);
/// The warm-up starts after this long at the latest, however busy the pool is.
const WARM_WITHIN: Duration = Duration::from_secs(5);

/// Waits (without the GIL) until no job is queued or running and none was taken for
/// [`QUIET`], or [`WARM_WITHIN`] has passed. The warm-up imports litellm for seconds while
/// holding the GIL most of the time: started at once, it made the first calls after
/// start-up share the GIL with it (first execute 2 ms → 40-50 ms). A program that makes an
/// LM call before then imports litellm itself, as it would without a warm-up.
fn wait_until_quiet(pool: &Pool) {
    let deadline = Instant::now() + WARM_WITHIN;
    while Instant::now() < deadline {
        let stats = pool.stats();
        let since = pool.epoch.elapsed().saturating_sub(Duration::from_nanos(
            pool.last_dequeue.load(Ordering::Acquire),
        ));
        if stats.queued == 0 && stats.workers_idle >= stats.workers_alive && since >= QUIET {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The environment `config` names, checked without starting Python: it exists, it was made
/// by the Python the NIF is linked against, and dspy is installed in it.
pub fn environment(config: &Config) -> Result<PythonEnv, String> {
    // Which venv runs is a run-time setting only: nothing about it is baked into the build.
    let python = config.python.as_deref().ok_or_else(|| {
        "no Python environment configured: set `config :dspex_native, python: \"/path/to/venv\"` \
         or DSPEX_PYTHON (create one with `mix dspex_native.setup`)"
            .to_owned()
    })?;
    let env = config::resolve_python(python)?;
    let linked = bootstrap::linked_version();
    let Some(version) = &env.version else {
        return Err(format!(
            "{} has no pyvenv.cfg: point DSPEX_PYTHON at a venv made by Python {}",
            env.prefix.display(),
            linked.split_whitespace().next().unwrap_or("")
        ));
    };
    config::check_version(version, &linked)?;
    config::check_dspy(&env, version)?;
    Ok(env)
}

/// Starts Python and the bridge; the start-up report lacks only its total.
fn boot(config: &Config, env: &PythonEnv) -> Result<(Engine, Py<PyModule>, Ready), String> {
    let libpython = bootstrap::promote_libpython()?;
    tracing::info!(libpython, python = %env.executable.display(), "starting Python");
    bootstrap::disable_openssl_atexit();
    let started = Instant::now();
    bootstrap::initialize(env)?;
    let init_ms = millis(started.elapsed());
    Python::attach(|py| {
        let started = Instant::now();
        let bridge = bootstrap::import_bridge(py, env, &config.bridge_path)?;
        let ready = Ready {
            init_ms,
            import_ms: millis(started.elapsed()),
            ..describe(&bridge)
        };
        let get = |name: &str| {
            bridge
                .getattr(name)
                .map(Bound::unbind)
                .map_err(|e| format!("dspex_bridge.{name} is missing: {e}"))
        };
        let engine = Engine {
            open_session: get("open_session")?,
            run_session_op: get("call")?,
            run_global_op: get("global_call")?,
            release: get("release")?,
            atom: get("Atom")?,
            cancelled: get("Cancelled")?,
        };
        fill_hooks(py, &engine).map_err(|e| format!("filling dspex_bridge.hooks failed: {e}"))?;
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
        .and_then(|()| {
            set(
                "importable",
                config.importable.clone().into_pyobject(py)?.into_any(),
            )
        })
        .and_then(|()| bridge.call_method1("setup", (options.clone(),)).map(drop))
        .map_err(|e| format!("dspex_bridge.setup failed: {e}"))?;
        Ok((engine, bridge.unbind(), ready))
    })
}

/// The versions and venv `dspex_bridge.environment()` reports (empty if it cannot).
fn describe(bridge: &Bound<'_, PyModule>) -> Ready {
    let found = bridge.call_method0("environment");
    let text = |key: &str| {
        found
            .as_ref()
            .ok()
            .and_then(|env| env.get_item(key).ok())
            .and_then(|v| v.extract::<String>().ok())
            .unwrap_or_default()
    };
    Ready {
        python_version: text("version"),
        dspy_version: text("dspy"),
        venv: text("prefix"),
        ..Ready::default()
    }
}

/// Fills `dspex_bridge.hooks` with the functions Python calls to reach the running job's
/// caller (see `callbacks`). Python code reads them from that module at call time.
fn fill_hooks(py: Python<'_>, engine: &Engine) -> PyResult<()> {
    let hooks = py.import("dspex_bridge.hooks")?;
    hooks.setattr(
        "call_elixir",
        callbacks::call_elixir_function(py, engine.atom.clone_ref(py))?,
    )?;
    hooks.setattr(
        "notify_elixir",
        callbacks::notify_elixir_function(py, engine.atom.clone_ref(py))?,
    )?;
    hooks.setattr("current_caller", callbacks::current_caller_function(py)?)?;
    let lm_calls = PyCFunction::new_closure(
        py,
        Some(c"lm_events"),
        Some(c"Whether jobs report each LM call to their caller."),
        |_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>| -> PyResult<bool> {
            Ok(events::lm_calls_reported())
        },
    )?;
    hooks.setattr("lm_events", lm_calls)?;
    Ok(())
}
