//! Calls from Python back into the BEAM (ReAct tools, optimizer metrics), and Python's
//! output during a job.
//!
//! While a job runs, its worker thread knows how to reach the job's caller. Python calls
//! `dspex_bridge.hooks.call_elixir(request, timeout)`: the request goes to the caller as a
//! message, the caller runs the Elixir function in a process tied to the job and answers
//! through [`answer_request`]. Meanwhile the worker waits *without the GIL*, so other jobs run. The
//! wait ends with the answer, the timeout, or the job's cancellation (its caller gave up
//! or died), whichever comes first. `dspex_bridge.hooks.notify_elixir(payload)` sends printed
//! text and log records the same way, without waiting.
//!
//! Every such message passes the job's gate ([`Gate::send_if_running`]), as the answer
//! does: once the caller has cancelled, nothing more reaches it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use pyo3::exceptions::{PyRuntimeError, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyCapsule, PyCapsuleMethods, PyDict, PyTuple};

use crate::gate::{Gate, GateState};
use crate::pycodec::{from_py, to_py};
use crate::value::{Value, MAX_FRAMING};

/// What a running job sends its caller besides its answer. This is the protocol's one
/// declaration; the NIF turns each into a message `DSPex.Native.Job` receives:
/// `{tag, {:output, payload}}` and `{tag, {:callback, id, request, timeout_ms}}`. The answer
/// itself comes last, as `{tag, {:ok, value} | {:error, error}, queue_ms, python_ms}` (see
/// [`crate::gate::Timing`]). Times cross in one unit, milliseconds: integers for timeouts,
/// floats for durations.
#[derive(Debug, PartialEq)]
pub enum Outbound {
    /// Printed text, a log record or an LM call's report (`%{"kind" => "output" | "log" |
    /// "lm", ...}`, see `dspex_bridge.output` and `dspex_bridge.observe`); nobody answers.
    Output(Value),
    /// Run the Elixir function `request["key"]` on `request["args"]` and answer with
    /// [`answer_request`]`(id, ...)` within `timeout_ms`, after which nobody waits.
    Request {
        id: u64,
        request: Value,
        timeout_ms: u64,
    },
}

/// Sends a message to the job's caller. Called only through the job's gate.
pub type ToCaller = Arc<dyn Fn(Outbound) + Send + Sync>;

/// What the Elixir side answered: a value, or an error message.
pub type Answer = Result<Value, String>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn pending() -> &'static Mutex<HashMap<u64, Sender<Answer>>> {
    static PENDING: OnceLock<Mutex<HashMap<u64, Sender<Answer>>>> = OnceLock::new();
    PENDING.get_or_init(Default::default)
}

thread_local! {
    /// The running job's way back to its caller, and its gate (to notice cancellation).
    static CURRENT: RefCell<Option<(ToCaller, Arc<Gate>)>> = const { RefCell::new(None) };
}

/// Makes `current` (a way to the caller, and the job's gate) the current job's for the duration of `f` on this thread.
pub(crate) fn with_current<R>(current: Option<(ToCaller, Arc<Gate>)>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|c| c.replace(current));
    let result = f();
    CURRENT.with(|c| *c.borrow_mut() = previous);
    result
}

/// The capsule name of a running job's way back to its caller, as Python holds it.
const CALLER: &std::ffi::CStr = c"dspex_native.caller";

type Current = (ToCaller, Arc<Gate>);

/// This thread's job's way back, or the one in `caller` (a capsule `hooks.current_caller`
/// made on the job's own thread): code the job runs on threads of its own (DSPy's
/// `Parallel`, `Evaluate(num_threads=...)`) reaches the same caller through the same gate.
fn current(caller: Option<Bound<'_, PyAny>>) -> PyResult<Option<Current>> {
    if let Some(found) = CURRENT.with(|c| c.borrow().clone()) {
        return Ok(Some(found));
    }
    let Some(capsule) = caller.as_ref().and_then(|c| c.cast::<PyCapsule>().ok()) else {
        return Ok(None);
    };
    if !capsule.is_valid_checked(Some(CALLER)) {
        return Ok(None);
    }
    let pointer = capsule.pointer_checked(Some(CALLER))?;
    // SAFETY: a capsule with this name is only made by `current_caller_function`, from a
    // `Current`, which lives as long as the capsule.
    Ok(Some(unsafe { pointer.cast::<Current>().as_ref() }.clone()))
}

/// The Python callable `hooks.current_caller()`: this thread's job's way back to its caller
/// as an opaque capsule (None when no job that may call back runs here).
pub(crate) fn current_caller_function(py: Python<'_>) -> PyResult<Bound<'_, PyCFunction>> {
    PyCFunction::new_closure(
        py,
        Some(c"current_caller"),
        Some(c"The running job's way back to its caller, for threads the job starts."),
        move |args: &Bound<'_, PyTuple>,
              _kwargs: Option<&Bound<'_, PyDict>>|
              -> PyResult<Py<PyAny>> {
            let py = args.py();
            match CURRENT.with(|c| c.borrow().clone()) {
                Some(found) => Ok(PyCapsule::new_with_value(py, found, CALLER)?
                    .into_any()
                    .unbind()),
                None => Ok(py.None()),
            }
        },
    )
}

/// Delivers the Elixir side's answer to the waiting worker. False if nobody waits any
/// more (it timed out or was cancelled).
pub fn answer_request(id: u64, answer: Answer) -> bool {
    let sender = pending()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    sender.is_some_and(|s| s.send(answer).is_ok())
}

/// The Python callable `hooks.notify_elixir(payload)`: sends `payload` to the running job's
/// caller without waiting (printed output, log records). False when no caller is listening
/// (no job on this thread, or a job that cannot call back), so Python writes it itself;
/// true also when the caller gave up: the output is dropped, as the answer is.
pub(crate) fn notify_elixir_function(
    py: Python<'_>,
    atom: Py<PyAny>,
) -> PyResult<Bound<'_, PyCFunction>> {
    PyCFunction::new_closure(
        py,
        Some(c"notify_elixir"),
        Some(c"Send a payload to the running job's caller without waiting."),
        move |args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>| -> PyResult<bool> {
            let Some((to_caller, gate)) = current(args.get_item(1).ok())? else {
                return Ok(false);
            };
            if gate.state() != GateState::Running {
                return Ok(true);
            }
            let payload = from_py(&args.get_item(0)?, atom.bind(args.py()), MAX_FRAMING)
                .map_err(|m| PyRuntimeError::new_err(format!("payload for Elixir: {m}")))?;
            gate.send_if_running(|| to_caller(Outbound::Output(payload)));
            Ok(true)
        },
    )
}

/// How a worker's wait for the Elixir side ended.
enum Waited {
    Answered(Answer),
    TimedOut,
    Cancelled,
}

/// How often a waiting worker checks whether its job was cancelled.
const POLL: Duration = Duration::from_millis(20);

/// The Python callable `hooks.call_elixir(request, timeout_seconds, caller=None)`.
pub(crate) fn call_elixir_function(
    py: Python<'_>,
    atom: Py<PyAny>,
) -> PyResult<Bound<'_, PyCFunction>> {
    PyCFunction::new_closure(
        py,
        Some(c"call_elixir"),
        Some(c"Call the Elixir side of the running job and wait (without the GIL) for its answer."),
        move |args: &Bound<'_, PyTuple>,
              _kwargs: Option<&Bound<'_, PyDict>>|
              -> PyResult<Py<PyAny>> {
            let py = args.py();
            let atom = atom.bind(py);
            let request = from_py(&args.get_item(0)?, atom, MAX_FRAMING)
                .map_err(|m| PyRuntimeError::new_err(format!("request to Elixir: {m}")))?;
            let timeout: f64 = args.get_item(1)?.extract()?;
            let Some((to_caller, gate)) = current(args.get_item(2).ok())? else {
                return Err(PyRuntimeError::new_err(
                    "no Elixir caller to call back on this thread",
                ));
            };
            let cancelled =
                || PyRuntimeError::new_err("the call was cancelled: its caller gave up");
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = bounded(1);
            pending()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, tx);
            let wait = Duration::from_secs_f64(timeout.clamp(0.0, 1.0e9));
            let sent = gate.send_if_running(|| {
                to_caller(Outbound::Request {
                    id,
                    request,
                    timeout_ms: wait.as_millis().try_into().unwrap_or(u64::MAX),
                })
            });
            if !sent {
                pending()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                return Err(cancelled());
            }
            let deadline = Instant::now() + wait;
            let outcome = py.detach(|| loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break Waited::TimedOut;
                }
                if let Ok(answer) = rx.recv_timeout(left.min(POLL)) {
                    break Waited::Answered(answer);
                }
                if gate.state() == GateState::Cancelled {
                    break Waited::Cancelled;
                }
            });
            pending()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            match outcome {
                // The function's own return value: no framing.
                Waited::Answered(Ok(value)) => Ok(to_py(py, &value, atom, 0)
                    .map_err(PyRuntimeError::new_err)?
                    .unbind()),
                Waited::Answered(Err(message)) => Err(PyRuntimeError::new_err(message)),
                Waited::Cancelled => Err(cancelled()),
                Waited::TimedOut => Err(PyTimeoutError::new_err(format!(
                    "the Elixir function did not answer within {timeout} s"
                ))),
            }
        },
    )
}
