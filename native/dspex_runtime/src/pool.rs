//! The pool's shared state: the job queue, the release queue, the interrupt requests, the
//! runtime's status and its counters. BEAM threads only ever push onto these queues (never
//! blocking, never taking the GIL); the threads that serve them live in [`crate::workers`]
//! and [`crate::control`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crossbeam_channel::{unbounded, Receiver, Sender, TrySendError};

use crate::bridge::Engine;
use crate::error::{Error, Reason};
use crate::gate::Gate;
use crate::job::{Job, Target};
use crate::queue::JobQueue;
use crate::releases::{Releaser, Releases};

/// Where the runtime is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Starting,
    Ready,
    Failed(String),
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
    pub(crate) jobs: JobQueue,
    pub(crate) releases: Releases,
    /// Gates of cancelled jobs whose Python code may still run (see `control`).
    interrupts_tx: Sender<Arc<Gate>>,
    pub(crate) interrupts_rx: Receiver<Arc<Gate>>,
    status: Mutex<Status>,
    /// False between `Application.stop` and the next start: calls are refused.
    accepting: AtomicBool,
    /// Test-only operations (`test_panic`, `test_eval`) are allowed.
    test_hooks: bool,
    pub(crate) engine: OnceLock<Engine>,
    /// Workers kept ready, and the most the pool grows to.
    pub(crate) workers: usize,
    pub(crate) max_workers: usize,
    pub(crate) workers_alive: AtomicUsize,
    /// Workers waiting for work (sleeping or polling).
    pub(crate) workers_idle: AtomicUsize,
    pub(crate) next_worker: AtomicUsize,
    /// When a worker last took a job (nanoseconds since `epoch`).
    pub(crate) last_dequeue: AtomicU64,
    pub(crate) epoch: Instant,
    /// Which idle worker may poll the queue: the one holding the latest ticket (see
    /// `workers::poll_for_jobs`).
    pub(crate) poll_ticket: AtomicU64,
    sessions: Arc<AtomicUsize>,
    next_session_id: AtomicU64,
    pub(crate) jobs_done: AtomicU64,
    jobs_cancelled: AtomicU64,
}

impl Pool {
    pub(crate) fn new(
        workers: usize,
        max_workers: usize,
        queue_size: usize,
        test_hooks: bool,
    ) -> Pool {
        let max_workers = max_workers.max(workers).max(1);
        let (interrupts_tx, interrupts_rx) = unbounded();
        Pool {
            jobs: JobQueue::new(queue_size, max_workers),
            releases: Releases::new(),
            interrupts_tx,
            interrupts_rx,
            status: Mutex::new(Status::Starting),
            accepting: AtomicBool::new(true),
            test_hooks,
            engine: OnceLock::new(),
            workers: workers.max(1),
            max_workers,
            workers_alive: AtomicUsize::new(0),
            workers_idle: AtomicUsize::new(0),
            next_worker: AtomicUsize::new(0),
            last_dequeue: AtomicU64::new(0),
            epoch: Instant::now(),
            poll_ticket: AtomicU64::new(0),
            sessions: Arc::new(AtomicUsize::new(0)),
            next_session_id: AtomicU64::new(1),
            jobs_done: AtomicU64::new(0),
            jobs_cancelled: AtomicU64::new(0),
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

    /// Whether the runtime was started with `test_hooks: true`.
    pub fn test_hooks(&self) -> bool {
        self.test_hooks
    }

    /// A new session's id, its way to release its Python object, and the live count.
    pub(crate) fn session_parts(&self) -> (u64, Releaser, Arc<AtomicUsize>) {
        let id = self.next_session_id.fetch_add(1, Ordering::Relaxed);
        (id, self.releases.releaser(), self.sessions.clone())
    }

    /// Queues a job; never blocks. Refused at once when the runtime failed to start or
    /// the queue is full, and when it is a test hook the runtime does not allow.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Error> {
        if let Status::Failed(why) = self.status() {
            return Err(Error::not_started(why));
        }
        if !self.accepting.load(Ordering::Acquire) {
            return Err(Error::not_started(
                "the dspex_native application is stopped",
            ));
        }
        if let Target::Global(op) = &job.target {
            if op.is_test_hook() && !self.test_hooks {
                return Err(Error::invalid_argument(format!(
                    "unknown operation {:?} (a test hook: start with test_hooks: true)",
                    op.name()
                )));
            }
        }
        match self.jobs.push(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::new(
                Reason::Overloaded,
                format!(
                    "the job queue is full ({} jobs waiting for {} workers); try again later",
                    self.jobs.len(),
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
    pub fn count_cancelled(&self) {
        self.jobs_cancelled.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks the control thread to interrupt a cancelled job that is running Python code.
    /// Never blocks and never takes the GIL here.
    pub fn interrupt(&self, gate: Arc<Gate>) {
        let _ = self.interrupts_tx.send(gate);
    }

    /// Jobs queued or running (workers not idle), read without the GIL or a lock: how busy
    /// the pool is for a caller deciding whether to poll for its answer.
    pub fn load(&self) -> usize {
        let busy = self
            .workers_alive
            .load(Ordering::Relaxed)
            .saturating_sub(self.workers_idle.load(Ordering::Relaxed));
        self.jobs.len() + busy
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            status: self.status(),
            workers: self.workers,
            max_workers: self.max_workers,
            workers_alive: self.workers_alive.load(Ordering::Relaxed),
            workers_idle: self.workers_idle.load(Ordering::Relaxed),
            queued: self.jobs.len(),
            releases_queued: self.releases.queued(),
            sessions: self.sessions.load(Ordering::Relaxed),
            jobs_done: self.jobs_done.load(Ordering::Relaxed),
            jobs_cancelled: self.jobs_cancelled.load(Ordering::Relaxed),
            releases_done: self.releases.done(),
        }
    }
}
