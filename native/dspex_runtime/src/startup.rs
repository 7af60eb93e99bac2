//! Start-up on the runtime's own Python thread (`dspex-python`): initialise CPython in the
//! configured venv, import `dspex_bridge`, fill its `hooks` module with the functions that
//! reach the BEAM, then start the workers and the control thread. The thread then stays
//! alive, because it is Python's main thread (signal handling lives there).

use pyo3::prelude::*;

use crate::bootstrap;
use crate::bridge::Engine;
use crate::callbacks;
use crate::config::{self, Config, PythonEnv};
use crate::control;
use crate::pool::{Pool, Status};
use crate::workers;

/// The Python runtime's main thread: starts the interpreter, then stays alive so that
/// Python's notion of its main thread stays valid (signal handling lives there).
pub fn python_main(pool: &'static Pool, config: Config, env: PythonEnv) {
    let span = tracing::info_span!("startup");
    let entered = span.enter();
    let started = std::time::Instant::now();
    let engine = boot(&config, &env);
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
    workers::spawn_all(pool);
    // Interrupts must not wait for the warm-up below.
    control::spawn(pool);
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

fn boot(config: &Config, env: &PythonEnv) -> Result<(Engine, Py<PyModule>), String> {
    let libpython = bootstrap::promote_libpython()?;
    tracing::info!(libpython, python = %env.executable.display(), "starting Python");
    bootstrap::disable_openssl_atexit();
    bootstrap::initialize(env)?;
    Python::attach(|py| {
        let bridge = bootstrap::import_bridge(py, env, &config.bridge_path)?;
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
        Ok((engine, bridge.unbind()))
    })
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
    Ok(())
}
