//! The gate that decides whether a job's answer (and anything else it sends) is delivered.
//!
//! The caller may give up on a job (timeout) while it is queued or running. The gate makes
//! that race-free: the worker delivers the answer while holding the gate's lock, and a
//! cancel under the same lock either stops delivery or learns that the answer is already
//! in the caller's mailbox (so the caller can flush it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Error;
use crate::value::Value;

/// Delivers a job's result, and how long it took, to whoever waits for it (a BEAM process,
/// a test channel).
pub type Deliver = Box<dyn FnOnce(Result<Value, Error>, Timing) + Send>;

/// Where a job's time went, in float milliseconds (the protocol's one time unit): waiting
/// in the queue for a worker, then on the worker (taking the GIL, Python, encoding nothing
/// yet: the answer is encoded as it is delivered).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Timing {
    pub queue_ms: f64,
    pub python_ms: f64,
}

/// `d` in the protocol's time unit: float milliseconds.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateState {
    Queued,
    Running,
    /// The answer has been delivered.
    Sent,
    /// The caller gave up; the answer will be dropped.
    Cancelled,
}

/// What `Gate::cancel` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The job will not deliver; if it was running, its result is discarded.
    Stopped { was_running: bool },
    /// The answer was delivered before the cancel: the caller must flush it.
    AlreadySent,
}

#[derive(Debug)]
pub struct Gate {
    state: Mutex<GateState>,
    /// The Python thread ident of the worker running the job, while it is in Python.
    python_thread: AtomicU64,
    /// Set and cleared by the worker while it holds the GIL, so a thread that holds the GIL
    /// reads a stable answer: is this job's Python code running right now?
    in_python: AtomicBool,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            state: Mutex::new(GateState::Queued),
            python_thread: AtomicU64::new(0),
            in_python: AtomicBool::new(false),
        }
    }
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    pub fn state(&self) -> GateState {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // A panic while holding this lock cannot leave the state half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the job running; false if it was cancelled while queued (skip it).
    pub fn start(&self) -> bool {
        let mut s = self.lock();
        if *s == GateState::Cancelled {
            return false;
        }
        *s = GateState::Running;
        true
    }

    /// Delivers `result` unless the job was cancelled. Returns whether it was delivered.
    pub fn deliver(&self, deliver: Deliver, result: Result<Value, Error>, timing: Timing) -> bool {
        let mut s = self.lock();
        if *s == GateState::Cancelled {
            return false;
        }
        deliver(result, timing);
        *s = GateState::Sent;
        true
    }

    /// Runs `send` (a message to the job's caller other than its answer) unless the job was
    /// cancelled, under the same lock as `cancel`: once the caller's cancel returns, nothing
    /// more reaches it, and whatever was sent before is already in its mailbox.
    pub fn send_if_running(&self, send: impl FnOnce()) -> bool {
        let s = self.lock();
        if *s != GateState::Running {
            return false;
        }
        send();
        true
    }

    /// Called by the worker, holding the GIL, as the job's Python code starts.
    pub(crate) fn enter_python(&self, thread_ident: u64) {
        self.python_thread.store(thread_ident, Ordering::SeqCst);
        self.in_python.store(true, Ordering::SeqCst);
    }

    /// Called by the worker, holding the GIL, as the job's Python code ends.
    pub(crate) fn leave_python(&self) {
        self.in_python.store(false, Ordering::SeqCst);
    }

    /// The thread to interrupt: only a cancelled job whose Python code is running. Must be
    /// read while holding the GIL (then the worker cannot enter or leave meanwhile).
    pub(crate) fn interrupt_target(&self) -> Option<u64> {
        let cancelled = self.state() == GateState::Cancelled;
        (cancelled && self.in_python.load(Ordering::SeqCst))
            .then(|| self.python_thread.load(Ordering::SeqCst))
    }

    pub fn cancel(&self) -> Cancelled {
        let mut s = self.lock();
        match *s {
            GateState::Sent => Cancelled::AlreadySent,
            GateState::Cancelled => Cancelled::Stopped { was_running: false },
            GateState::Queued => {
                *s = GateState::Cancelled;
                Cancelled::Stopped { was_running: false }
            }
            GateState::Running => {
                *s = GateState::Cancelled;
                Cancelled::Stopped { was_running: true }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn channel_deliver() -> (Deliver, mpsc::Receiver<Result<Value, Error>>) {
        let (tx, rx) = mpsc::channel();
        (Box::new(move |r, _| tx.send(r).unwrap()), rx)
    }

    #[test]
    fn a_cancelled_queued_job_never_starts_or_delivers() {
        let gate = Gate::new();
        assert_eq!(gate.cancel(), Cancelled::Stopped { was_running: false });
        assert!(!gate.start());
        let (deliver, rx) = channel_deliver();
        assert!(!gate.deliver(deliver, Ok(Value::Nil), Timing::default()));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn cancel_after_delivery_tells_the_caller_to_flush() {
        let gate = Gate::new();
        assert!(gate.start());
        let (deliver, rx) = channel_deliver();
        assert!(gate.deliver(deliver, Ok(Value::Int(1)), Timing::default()));
        assert_eq!(gate.cancel(), Cancelled::AlreadySent);
        assert_eq!(rx.try_recv().unwrap(), Ok(Value::Int(1)));
    }

    #[test]
    fn cancel_while_running_drops_the_late_answer() {
        let gate = Gate::new();
        assert!(gate.start());
        assert_eq!(gate.cancel(), Cancelled::Stopped { was_running: true });
        let (deliver, rx) = channel_deliver();
        assert!(!gate.deliver(deliver, Ok(Value::Nil), Timing::default()));
        assert!(rx.try_recv().is_err());
        assert_eq!(gate.state(), GateState::Cancelled);
    }

    #[test]
    fn nothing_is_sent_after_a_cancel() {
        let gate = Gate::new();
        let (tx, rx) = mpsc::channel();
        assert!(!gate.send_if_running(|| tx.send("queued").unwrap()));
        assert!(gate.start());
        assert!(gate.send_if_running(|| tx.send("running").unwrap()));
        gate.cancel();
        assert!(!gate.send_if_running(|| tx.send("cancelled").unwrap()));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["running"]);
    }

    #[test]
    fn only_a_cancelled_job_inside_python_is_an_interrupt_target() {
        let gate = Gate::new();
        assert!(gate.start());
        gate.enter_python(42);
        assert_eq!(gate.interrupt_target(), None, "running, not cancelled");
        gate.cancel();
        assert_eq!(gate.interrupt_target(), Some(42));
        gate.leave_python();
        assert_eq!(
            gate.interrupt_target(),
            None,
            "left Python: nothing to interrupt"
        );
    }

    #[test]
    fn racing_cancel_and_deliver_yield_exactly_one_outcome() {
        for _ in 0..200 {
            let gate = Gate::new();
            assert!(gate.start());
            let (deliver, rx) = channel_deliver();
            let g2 = gate.clone();
            let t =
                std::thread::spawn(move || g2.deliver(deliver, Ok(Value::Nil), Timing::default()));
            let outcome = gate.cancel();
            let delivered = t.join().unwrap();
            match outcome {
                Cancelled::AlreadySent => assert!(delivered && rx.try_recv().is_ok()),
                Cancelled::Stopped { .. } => assert!(!delivered && rx.try_recv().is_err()),
            }
        }
    }
}
