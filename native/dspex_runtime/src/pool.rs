//! The pool of Python worker threads.
//!
//! BEAM threads only ever push onto two crossbeam channels: a bounded queue of jobs and an
//! unbounded queue of releases (Python objects of closed or collected sessions). Workers
//! take releases first, so a release never waits behind executions and is never refused.
//! Only workers (and the runtime's own Python main thread) ever take the GIL.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{
    bounded, select, unbounded, Receiver, RecvTimeoutError, Sender, TrySendError,
};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::error::{known_reason, Error};
use crate::job::{Gate, Job, Target};
use crate::pycodec::{from_py, to_py};
use crate::value::{Value, MAX_FRAMING};

/// How long an idle worker polls for the next job before sleeping.
const SPIN: Duration = Duration::from_micros(200);

/// How long jobs may wait with every worker busy and none taken before the pool grows.
const GROW_AFTER: Duration = Duration::from_millis(2);

/// Releases after which an emptied release queue returns freed memory to the OS.
const TRIM_AFTER: u64 = 100;

/// How long a worker keeps running queued jobs under one GIL hold.
const BATCH: Duration = Duration::from_micros(200);

/// The most workers added at one check.
const GROW_STEP: usize = 8;

/// How long a worker beyond the minimum stays idle before it retires.
const RETIRE_AFTER: Duration = Duration::from_secs(10);

/// Where the runtime is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Starting,
    Ready,
    Failed(String),
}

/// The bridge functions workers call, looked up once.
pub(crate) struct Engine {
    pub open_session: Py<PyAny>,
    pub call: Py<PyAny>,
    pub release: Py<PyAny>,
    pub global_call: Py<PyAny>,
    pub atom: Py<PyAny>,
    /// `dspex_bridge.Cancelled`, raised asynchronously in a job that was given up on.
    pub cancelled: Py<PyAny>,
}

/// Requests for the runtime's own Python thread.
pub(crate) enum Control {
    /// Interrupt the job behind this gate if its Python code is still running.
    Interrupt(Arc<Gate>),
}

/// Counters reported by `DSPex.Native.stats/0`, read without the GIL.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStats {
    pub status: Status,
    /// Workers kept ready.
    pub workers: usize,
    /// The most the pool grows to while calls wait (LM calls mostly wait on HTTP).
    pub max_workers: usize,
    pub workers_alive: usize,
    pub workers_idle: usize,
    pub queued: usize,
    pub releases_queued: usize,
    pub sessions: usize,
    pub jobs_done: u64,
    /// Jobs whose caller gave up (timed out or died) before they answered.
    pub jobs_cancelled: u64,
    pub releases_done: u64,
}

pub struct Pool {
    jobs_tx: Sender<Job>,
    jobs_rx: Receiver<Job>,
    releases_tx: Sender<Py<PyAny>>,
    releases_rx: Receiver<Py<PyAny>>,
    control_tx: Sender<Control>,
    control_rx: Receiver<Control>,
    status: Mutex<Status>,
    /// False between `Application.stop` and the next start: calls are refused.
    accepting: AtomicBool,
    /// Test-only operations (`test_panic`) are allowed.
    test_hooks: bool,
    engine: OnceLock<Engine>,
    workers: usize,
    max_workers: usize,
    workers_alive: AtomicUsize,
    /// Workers waiting for work (sleeping or spinning).
    workers_idle: AtomicUsize,
    next_worker: AtomicUsize,
    /// When a worker last took a job (nanoseconds since `epoch`).
    last_dequeue: AtomicU64,
    epoch: Instant,
    /// Whether an idle worker is polling the queue (see `spin_for_job`).
    spinning: AtomicBool,
    sessions: AtomicUsize,
    next_session_id: AtomicU64,
    jobs_done: AtomicU64,
    jobs_cancelled: AtomicU64,
    releases_done: AtomicU64,
    /// `releases_done` when memory was last handed back to the OS.
    trimmed_at: AtomicU64,
}

impl Pool {
    pub(crate) fn new(
        workers: usize,
        max_workers: usize,
        queue_size: usize,
        test_hooks: bool,
    ) -> Pool {
        let (jobs_tx, jobs_rx) = bounded(queue_size.max(1));
        let (releases_tx, releases_rx) = unbounded();
        let (control_tx, control_rx) = unbounded();
        Pool {
            jobs_tx,
            jobs_rx,
            releases_tx,
            releases_rx,
            control_tx,
            control_rx,
            status: Mutex::new(Status::Starting),
            accepting: AtomicBool::new(true),
            test_hooks,
            engine: OnceLock::new(),
            workers: workers.max(1),
            max_workers: max_workers.max(workers).max(1),
            workers_alive: AtomicUsize::new(0),
            workers_idle: AtomicUsize::new(0),
            next_worker: AtomicUsize::new(0),
            last_dequeue: AtomicU64::new(0),
            epoch: Instant::now(),
            spinning: AtomicBool::new(false),
            sessions: AtomicUsize::new(0),
            next_session_id: AtomicU64::new(1),
            jobs_done: AtomicU64::new(0),
            jobs_cancelled: AtomicU64::new(0),
            releases_done: AtomicU64::new(0),
            trimmed_at: AtomicU64::new(0),
        }
    }

    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_status(&self, status: Status) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    pub(crate) fn set_engine(&self, engine: Engine) {
        let _ = self.engine.set(engine);
    }

    pub(crate) fn next_session_id(&self) -> u64 {
        self.next_session_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn sessions_opened(&self) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sessions_dropped(&self) {
        self.sessions.fetch_sub(1, Ordering::Relaxed);
    }

    /// Queues a job; never blocks. Refused at once when the runtime failed to start or
    /// the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), Error> {
        if let Status::Failed(why) = self.status() {
            return Err(Error::not_started(why));
        }
        if !self.accepting.load(Ordering::Acquire) {
            return Err(Error::not_started(
                "the dspex_native application is stopped",
            ));
        }
        match self.jobs_tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::new(
                "overloaded",
                format!(
                    "the job queue is full ({} jobs waiting for {} workers); try again later",
                    self.jobs_tx.len(),
                    self.workers
                ),
            )),
            Err(TrySendError::Disconnected(_)) => Err(Error::not_started("the pool has stopped")),
        }
    }

    /// Whether new jobs are accepted (false after `Application.stop`).
    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// Refuses (false) or accepts (true) new jobs; jobs already queued still run.
    pub fn set_accepting(&self, accepting: bool) {
        self.accepting.store(accepting, Ordering::Release);
    }

    /// Counts a job its caller gave up on (see `jobs_cancelled`).
    pub fn cancelled(&self) {
        self.jobs_cancelled.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks the runtime's Python thread to interrupt a cancelled job that is running
    /// Python code. Never blocks and never takes the GIL here.
    pub fn interrupt(&self, gate: Arc<Gate>) {
        let _ = self.control_tx.send(Control::Interrupt(gate));
    }

    /// Runs on the runtime's Python thread: raises `dspex_bridge.Cancelled` in the worker
    /// running a cancelled job. Holding the GIL, the worker cannot enter or leave the job's
    /// Python code meanwhile, so the exception can only land in the job it is meant for
    /// (and the worker clears a pending one as each job ends).
    pub(crate) fn serve_control(&'static self) {
        self.keep_thread_state();
        loop {
            let gate = match self.control_rx.recv_timeout(GROW_AFTER) {
                Ok(Control::Interrupt(gate)) => gate,
                Err(RecvTimeoutError::Timeout) => {
                    self.grow_if_stalled();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            self.grow_if_stalled();
            let Some(engine) = self.engine.get() else {
                continue;
            };
            Python::attach(|py| {
                if let Some(thread) = gate.interrupt_target() {
                    // SAFETY: the GIL is held; the exception type lives as long as the engine.
                    let n = unsafe {
                        ffi::PyThreadState_SetAsyncExc(
                            thread as libc::c_long,
                            engine.cancelled.bind(py).as_ptr(),
                        )
                    };
                    tracing::debug!(thread, interrupted = n, "interrupting a cancelled job");
                }
            });
        }
    }

    /// Hands a Python object to the workers to drop under the GIL. Never blocks.
    pub(crate) fn release(&self, object: Py<PyAny>) {
        // The receiver lives in this 'static pool, so the send cannot fail.
        let _ = self.releases_tx.send(object);
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            status: self.status(),
            workers: self.workers,
            max_workers: self.max_workers,
            workers_alive: self.workers_alive.load(Ordering::Relaxed),
            workers_idle: self.workers_idle.load(Ordering::Relaxed),
            queued: self.jobs_rx.len(),
            releases_queued: self.releases_rx.len(),
            sessions: self.sessions.load(Ordering::Relaxed),
            jobs_done: self.jobs_done.load(Ordering::Relaxed),
            jobs_cancelled: self.jobs_cancelled.load(Ordering::Relaxed),
            releases_done: self.releases_done.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn spawn_workers(&'static self) {
        for _ in 0..self.workers {
            self.spawn_worker();
        }
    }

    fn spawn_worker(&'static self) {
        let n = self.next_worker.fetch_add(1, Ordering::Relaxed);
        // Counted before the thread runs, so a burst of Grow requests cannot overshoot.
        self.workers_alive.fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new()
            .name(format!("dspex-worker-{n}"))
            .spawn(move || self.worker_loop(n));
        if let Err(e) = spawned {
            self.workers_alive.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(error = %e, "could not start a worker thread");
        }
    }

    /// Grows the pool when jobs wait, no worker is idle and none has taken a job for a
    /// while: the workers are blocked in long calls (LM calls wait on HTTP with the GIL
    /// released), so another thread means another call in flight. Work that keeps the
    /// queue moving (short GIL-bound jobs) does not grow the pool: more threads would only
    /// fight over the GIL.
    fn grow_if_stalled(&'static self) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let stalled = now.saturating_sub(self.last_dequeue.load(Ordering::Acquire))
            > GROW_AFTER.as_nanos() as u64;
        let waiting = self.jobs_rx.len();
        if waiting == 0 || !stalled || self.workers_idle.load(Ordering::Acquire) > 0 {
            return;
        }
        let room = self.max_workers
            - self
                .workers_alive
                .load(Ordering::Acquire)
                .min(self.max_workers);
        for _ in 0..waiting.min(room).min(GROW_STEP) {
            self.spawn_worker();
        }
    }

    /// Gives this thread a Python thread state for as long as it serves, without holding
    /// the GIL. Otherwise every `Python::attach` creates a thread state and every release
    /// destroys it (PyGILState's counter drops to zero): tens of microseconds per job, and
    /// Python sees a new "dummy" thread each time. Returns what `drop_thread_state` needs.
    fn keep_thread_state(&self) -> Option<(ffi::PyGILState_STATE, *mut ffi::PyThreadState)> {
        self.engine.get()?; // Python never started: nothing to keep.
                            // SAFETY: Python is initialised (the engine exists only after start-up succeeded).
                            // SaveThread leaves the GIL free while keeping the thread state.
        unsafe {
            let state = ffi::PyGILState_Ensure();
            Some((state, ffi::PyEval_SaveThread()))
        }
    }

    fn drop_thread_state(kept: Option<(ffi::PyGILState_STATE, *mut ffi::PyThreadState)>) {
        if let Some((state, saved)) = kept {
            // SAFETY: undoes keep_thread_state on the same thread, in reverse order.
            unsafe {
                ffi::PyEval_RestoreThread(saved);
                ffi::PyGILState_Release(state);
            }
        }
    }

    fn worker_loop(&'static self, n: usize) {
        // Counts this worker out however it ends (retiring, or a panic that escaped).
        let mut alive = Alive {
            count: &self.workers_alive,
            counted: true,
        };
        let kept = self.keep_thread_state();
        tracing::debug!(worker = n, "worker started");
        // Workers beyond the minimum retire after a while without work.
        let extra = n >= self.workers;
        loop {
            // Releases first: freeing memory must not wait behind executions.
            if let Ok(object) = self.releases_rx.try_recv() {
                self.run_release(object);
                continue;
            }
            self.workers_idle.fetch_add(1, Ordering::AcqRel);
            let job = self.spin_for_job();
            if let Some(job) = job {
                self.workers_idle.fetch_sub(1, Ordering::AcqRel);
                self.run_jobs(job);
                continue;
            }
            let timeout = if extra {
                RETIRE_AFTER
            } else {
                Duration::from_secs(3600)
            };
            let mut retire = false;
            select! {
                recv(self.releases_rx) -> msg => {
                    self.workers_idle.fetch_sub(1, Ordering::AcqRel);
                    if let Ok(object) = msg { self.run_release(object) }
                }
                recv(self.jobs_rx) -> msg => {
                    self.workers_idle.fetch_sub(1, Ordering::AcqRel);
                    match msg {
                        Ok(job) => self.run_jobs(job),
                        Err(_) => retire = true,
                    }
                }
                default(timeout) => {
                    self.workers_idle.fetch_sub(1, Ordering::AcqRel);
                    if extra && self.retire_one() {
                        alive.counted = false;
                        retire = true;
                    }
                }
            }
            if retire {
                break;
            }
        }
        tracing::debug!(worker = n, "worker retired");
        Self::drop_thread_state(kept);
    }

    /// Lets an idle extra worker go, never below the minimum.
    fn retire_one(&self) -> bool {
        self.workers_alive
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live > self.workers).then(|| live - 1)
            })
            .is_ok()
    }

    /// One idle worker at a time polls the queue for a short while before sleeping: a
    /// caller making calls back to back then finds a worker awake instead of paying for a
    /// thread wake-up (several microseconds) on every call. Bounded, and never more than
    /// one spinning thread, so an idle pool costs no CPU.
    fn spin_for_job(&self) -> Option<Job> {
        if self
            .spinning
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        let deadline = Instant::now() + SPIN;
        let mut found = None;
        while Instant::now() < deadline {
            if let Ok(job) = self.jobs_rx.try_recv() {
                found = Some(job);
                break;
            }
            if !self.releases_rx.is_empty() {
                break;
            }
            std::hint::spin_loop();
        }
        self.spinning.store(false, Ordering::Release);
        found
    }

    fn run_release(&self, object: Py<PyAny>) {
        let _span = tracing::debug_span!("release").entered();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            Python::attach(|py| {
                if let Some(engine) = self.engine.get() {
                    if let Err(e) = engine.release.call1(py, (object.bind(py),)) {
                        tracing::warn!(error = %e, "releasing a session failed");
                    }
                }
                drop(object);
            })
        }));
        match outcome {
            Ok(()) => tracing::debug!("session released"),
            Err(_) => tracing::error!("a panic while releasing a session was caught"),
        }
        let done = self.releases_done.fetch_add(1, Ordering::Relaxed) + 1;
        // After a wave of releases, hand the freed heap back to the OS: glibc keeps it
        // otherwise, and a BEAM that dropped 10,000 sessions would stay tens of MB larger.
        // No GIL is needed; it runs on this worker, not a scheduler.
        if self.releases_rx.is_empty() {
            let last = self.trimmed_at.swap(done, Ordering::AcqRel);
            if done.saturating_sub(last) >= TRIM_AFTER {
                // SAFETY: malloc_trim only returns free memory to the OS.
                unsafe { libc::malloc_trim(0) };
                tracing::debug!(releases = done - last, "returned freed memory to the OS");
            } else {
                self.trimmed_at.store(last, Ordering::Release);
            }
        }
    }

    /// Runs `first`, then, while jobs stay short (pings, reads), the next queued ones under
    /// the same GIL hold: handing the GIL to another thread for every microsecond-long job
    /// costs more than the jobs. A long job (an LM call) ends the batch.
    fn run_jobs(&self, first: Job) {
        let Some(engine) = self.engine.get() else {
            let why = match self.status() {
                Status::Failed(why) => why,
                _ => "the runtime is not ready".to_owned(),
            };
            let Job { gate, deliver, .. } = first;
            if gate.start() {
                gate.deliver(deliver, Err(Error::not_started(why)));
            }
            return;
        };
        Python::attach(|py| {
            let batch = Instant::now();
            let mut job = first;
            loop {
                self.run_job(py, engine, job);
                if batch.elapsed() >= BATCH || !self.releases_rx.is_empty() {
                    break;
                }
                match self.jobs_rx.try_recv() {
                    Ok(next) => job = next,
                    Err(_) => break,
                }
            }
        })
    }

    fn run_job(&self, py: Python<'_>, engine: &Engine, job: Job) {
        self.last_dequeue
            .store(self.epoch.elapsed().as_nanos() as u64, Ordering::Release);
        let Job {
            target,
            op,
            args,
            gate,
            deliver,
            callback,
        } = job;
        if !gate.start() {
            tracing::debug!(op, "skipping a cancelled job");
            return;
        }
        let session = match &target {
            Target::Global => 0,
            Target::Open(cell) | Target::Session(cell) => cell.id,
        };
        let span = tracing::debug_span!("job", op = op.as_str(), session);
        let _entered = span.enter();
        let started = Instant::now();
        let current = callback.map(|c| (c, gate.clone()));
        let result = catch_unwind(AssertUnwindSafe(|| {
            crate::callbacks::with_current(current, || {
                self.execute(py, engine, &target, &op, &args, &gate)
            })
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(op, panic = what, "a panic in a job was caught");
            Err(Error::new(
                "internal_error",
                format!("the {op} job panicked: {what}"),
            ))
        });
        let ok = result.is_ok();
        let delivered = gate.deliver(deliver, result);
        tracing::debug!(
            ok,
            delivered,
            micros = started.elapsed().as_micros() as u64,
            "job done"
        );
        self.jobs_done.fetch_add(1, Ordering::Relaxed);
        // Dropping `target` may drop the last reference to a session: its Python object
        // goes to the release queue (no Python code runs here).
        drop(target);
    }

    fn execute(
        &self,
        py: Python<'_>,
        engine: &Engine,
        target: &Target,
        op: &str,
        args: &Value,
        gate: &Gate,
    ) -> Result<Value, Error> {
        if self.test_hooks && op == "test_panic" {
            panic!("test_panic: a deliberate panic in a worker");
        }
        // SAFETY: reads the current thread's identity; the GIL is held.
        let thread = unsafe { ffi::PyThread_get_thread_ident() } as u64;
        gate.enter_python(thread);
        let result = execute_attached(py, engine, target, op, args);
        gate.leave_python();
        // An interrupt that came too late to matter must not hit the next job.
        // SAFETY: NULL clears this thread's pending async exception; the GIL is held.
        unsafe { ffi::PyThreadState_SetAsyncExc(thread as libc::c_long, std::ptr::null_mut()) };
        result
    }
}

fn execute_attached(
    py: Python<'_>,
    engine: &Engine,
    target: &Target,
    op: &str,
    args: &Value,
) -> Result<Value, Error> {
    let atom = engine.atom.bind(py);
    // Global calls (ping) carry the user's value as it is; session calls wrap it.
    let framing = match target {
        Target::Global => 0,
        Target::Open(_) | Target::Session(_) => MAX_FRAMING,
    };
    let py_args = to_py(py, args, atom, framing).map_err(Error::invalid_argument)?;
    let answer = match target {
        Target::Global => engine.global_call.call1(py, (op, py_args)),
        Target::Open(cell) => {
            let answer = engine
                .open_session
                .call1(py, (cell.id, cell.name.as_str(), py_args))
                .map_err(|e| python_error(py, e))?;
            let object = unpack(py, answer.bind(py), atom)?;
            cell.install(object.unbind());
            return Ok(Value::Nil);
        }
        Target::Session(cell) => {
            let Some(object) = (!cell.is_closed()).then(|| cell.object(py)).flatten() else {
                return Err(Error::closed(cell.label()));
            };
            engine.call.call1(py, (object, op, py_args))
        }
    }
    .map_err(|e| python_error(py, e))?;
    let value = unpack(py, answer.bind(py), atom)?;
    from_py(&value, atom, framing).map_err(|msg| Error::new("python_error", msg))
}

/// Decrements the live-worker count when a worker ends, unless `retire_one` already did.
struct Alive<'a> {
    count: &'a AtomicUsize,
    counted: bool,
}

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Unpacks a bridge answer `(True, value)` / `(False, error_dict)`.
fn unpack<'py>(
    py: Python<'py>,
    answer: &Bound<'py, PyAny>,
    atom: &Bound<'py, PyAny>,
) -> Result<Bound<'py, PyAny>, Error> {
    let pair = answer
        .cast::<PyTuple>()
        .map_err(|_| Error::new("internal_error", "the bridge answered without a tuple"))?;
    let ok: bool = pair
        .get_item(0)
        .and_then(|v| v.extract())
        .map_err(|e| python_error(py, e))?;
    let payload = pair.get_item(1).map_err(|e| python_error(py, e))?;
    if ok {
        return Ok(payload);
    }
    let described =
        from_py(&payload, atom, MAX_FRAMING).map_err(|m| Error::new("internal_error", m))?;
    let text = |key: &str| {
        described
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Err(Error {
        reason: known_reason(&text("reason").unwrap_or_default()),
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
        reason: "python_error",
        message: err.to_string(),
        python_type,
        traceback,
    }
}
