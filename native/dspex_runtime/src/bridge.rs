//! The bridge protocol: how a job calls into Python (`dspex_bridge`) on a worker that
//! holds the GIL, and how the answer comes back.
//!
//! The bridge's functions are looked up once at start-up ([`Engine`]). Each answers a
//! tuple `(True, value)` or `(False, {reason, message, python_type, traceback})`; an
//! exception that escapes anyway becomes a `python_error`. While the job's Python code
//! runs, its gate knows the worker's Python thread, so that a cancel can interrupt it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::callbacks;
use crate::error::{Error, Reason};
use crate::gate::{millis, Gate, Timing};
use crate::job::{Job, Target};
use crate::op::GlobalOp;
use crate::pycodec::{from_py, to_py};
use crate::thread_state;
use crate::value::{Value, MAX_FRAMING};

/// The bridge functions workers call, looked up once.
pub struct Engine {
    /// `dspex_bridge.open_session(id, name, lm_spec)`.
    pub open_session: Py<PyAny>,
    /// `dspex_bridge.call(session, op, args)`.
    pub run_session_op: Py<PyAny>,
    /// `dspex_bridge.global_call(op, args)`.
    pub run_global_op: Py<PyAny>,
    /// `dspex_bridge.release(session)`.
    pub release: Py<PyAny>,
    pub atom: Py<PyAny>,
    /// `dspex_bridge.Cancelled`, raised asynchronously in a job that was given up on.
    pub cancelled: Py<PyAny>,
}

/// Runs one job to its end and delivers its answer through its gate, unless it was
/// cancelled first (then it returns false). A panic becomes the job's `internal_error`.
/// `answering` runs just before the answer is delivered (the worker gets ready for the
/// caller's next job).
pub fn run_job(py: Python<'_>, engine: &Engine, job: Job, answering: impl FnOnce()) -> bool {
    let Job {
        target,
        args,
        gate,
        deliver,
        to_caller,
        enqueued,
    } = job;
    let op = target.op_name();
    if !gate.start() {
        tracing::debug!(op, "skipping a cancelled job");
        return false;
    }
    let started = Instant::now();
    let span = tracing::debug_span!("job", op, session = target.session_id());
    let _entered = span.enter();
    let current = to_caller.map(|c| (c, gate.clone()));
    let result = catch_unwind(AssertUnwindSafe(|| {
        callbacks::with_current(current, || run_in_python(py, engine, &target, &args, &gate))
    }))
    .unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(op, panic = what, "a panic in a job was caught");
        Err(Error::internal(format!("the {op} job panicked: {what}")))
    });
    let ok = result.is_ok();
    let timing = Timing {
        queue_ms: millis(started.saturating_duration_since(enqueued)),
        python_ms: millis(started.elapsed()),
    };
    answering();
    let delivered = gate.deliver(deliver, result, timing);
    tracing::debug!(
        ok,
        delivered,
        micros = (timing.python_ms * 1000.0) as u64,
        "job done"
    );
    // Dropping `target` may drop the last reference to a session: its Python object goes
    // to the release queue (no Python code runs here).
    drop(target);
    true
}

/// Marks the job as inside Python for its gate (so a cancel can interrupt it) while the
/// bridge runs it.
fn run_in_python(
    py: Python<'_>,
    engine: &Engine,
    target: &Target,
    args: &Value,
    gate: &Gate,
) -> Result<Value, Error> {
    if let Target::Global(GlobalOp::TestPanic) = target {
        // Only queued when the runtime runs with test hooks.
        panic!("test_panic: a deliberate panic in a worker");
    }
    let thread = thread_state::current_ident(py);
    gate.enter_python(thread);
    let result = call_bridge(py, engine, target, args);
    gate.leave_python();
    thread_state::clear_pending(py, thread);
    result
}

fn call_bridge(
    py: Python<'_>,
    engine: &Engine,
    target: &Target,
    args: &Value,
) -> Result<Value, Error> {
    let atom = engine.atom.bind(py);
    // Global operations (ping) carry the user's value as it is; session operations wrap it.
    let framing = match target {
        Target::Global(_) => 0,
        Target::Open(_) | Target::Session(..) => MAX_FRAMING,
    };
    let py_args = to_py(py, args, atom, framing).map_err(Error::invalid_argument)?;
    let answer = match target {
        Target::Global(op) => engine.run_global_op.call1(py, (op.name(), py_args)),
        Target::Open(cell) => {
            let answer = engine
                .open_session
                .call1(py, (cell.id, cell.name.as_str(), py_args))
                .map_err(|e| python_error(py, e))?;
            let object = unpack(py, answer.bind(py), atom)?;
            cell.install(object.unbind());
            return Ok(Value::Nil);
        }
        Target::Session(cell, op) => {
            let Some(object) = (!cell.is_closed()).then(|| cell.object(py)).flatten() else {
                return Err(Error::closed(cell.label()));
            };
            engine
                .run_session_op
                .call1(py, (object, op.name(), py_args))
        }
    }
    .map_err(|e| python_error(py, e))?;
    let value = unpack(py, answer.bind(py), atom)?;
    from_py(&value, atom, framing).map_err(|msg| Error::new(Reason::PythonError, msg))
}

/// Unpacks a bridge answer `(True, value)` / `(False, error_dict)`.
fn unpack<'py>(
    py: Python<'py>,
    answer: &Bound<'py, PyAny>,
    atom: &Bound<'py, PyAny>,
) -> Result<Bound<'py, PyAny>, Error> {
    let pair = answer
        .cast::<PyTuple>()
        .map_err(|_| Error::internal("the bridge answered without a tuple"))?;
    let ok: bool = pair
        .get_item(0)
        .and_then(|v| v.extract())
        .map_err(|e| python_error(py, e))?;
    let payload = pair.get_item(1).map_err(|e| python_error(py, e))?;
    if ok {
        return Ok(payload);
    }
    let described = from_py(&payload, atom, MAX_FRAMING).map_err(Error::internal)?;
    let text = |key: &str| {
        described
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Err(Error {
        reason: Reason::from_name(&text("reason").unwrap_or_default()),
        message: text("message").unwrap_or_default(),
        python_type: text("python_type"),
        traceback: text("traceback"),
    })
}

/// An exception that escaped the bridge (which catches everything it can) as an error.
fn python_error(py: Python<'_>, err: PyErr) -> Error {
    let python_type = err.get_type(py).qualname().map(|n| n.to_string()).ok();
    let traceback = err.traceback(py).and_then(|tb| tb.format().ok());
    Error {
        reason: Reason::PythonError,
        message: err.to_string(),
        python_type,
        traceback,
    }
}
