//! Releasing sessions' Python objects without the GIL on the releasing side.
//!
//! A session's Python object may be dropped by a BEAM scheduler (the GC collects a handle,
//! an owner exits): that thread must neither take the GIL nor block. It hands the object
//! to a [`Releaser`], which pushes it onto an unbounded queue; a worker takes it from
//! [`Releases`] and calls `dspex_bridge.release` under the GIL. After a wave of releases,
//! the worker hands freed heap back to the OS (`malloc_trim`). A released `%Ref{}` goes the
//! same way, as a task: it drops one object from its session's table.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{unbounded, Receiver, Sender};
use pyo3::prelude::*;

/// Releases after which an emptied release queue returns freed memory to the OS.
const TRIM_AFTER: u64 = 100;

/// What the release queue holds: a session's Python object to release, or another piece
/// of freeing to run under the GIL (a ref's object leaving its session's table).
pub enum Release {
    Object(Py<PyAny>),
    Task(Box<dyn FnOnce(Python<'_>) + Send>),
}

/// The sending side a session keeps: hands its Python object over. Never blocks.
#[derive(Clone)]
pub struct Releaser {
    tx: Sender<Release>,
}

impl Releaser {
    pub fn release(&self, object: Py<PyAny>) {
        // The receiver lives in the 'static pool, so the send cannot fail.
        let _ = self.tx.send(Release::Object(object));
    }

    /// Runs `task` on a worker under the GIL, before any queued job.
    pub fn run_later(&self, task: Box<dyn FnOnce(Python<'_>) + Send>) {
        let _ = self.tx.send(Release::Task(task));
    }
}

/// The release queue, as the workers see it.
pub struct Releases {
    tx: Sender<Release>,
    rx: Receiver<Release>,
    done: AtomicU64,
    /// `done` when memory was last handed back to the OS.
    trimmed_at: AtomicU64,
}

impl Releases {
    pub fn new() -> Releases {
        let (tx, rx) = unbounded();
        Releases {
            tx,
            rx,
            done: AtomicU64::new(0),
            trimmed_at: AtomicU64::new(0),
        }
    }

    pub fn releaser(&self) -> Releaser {
        Releaser {
            tx: self.tx.clone(),
        }
    }

    /// What workers wait on (in a `select!`) besides jobs.
    pub fn receiver(&self) -> &Receiver<Release> {
        &self.rx
    }

    pub fn queued(&self) -> usize {
        self.rx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Calls `release(object)` (the bridge's, when Python runs) under the GIL, then drops
    /// the object there; a panic is caught and logged.
    pub fn run(&self, release: Option<&Py<PyAny>>, item: Release) {
        let _span = tracing::debug_span!("release").entered();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            Python::attach(|py| match item {
                Release::Object(object) => {
                    if let Some(release) = release {
                        if let Err(e) = release.call1(py, (object.bind(py),)) {
                            tracing::warn!(error = %e, "releasing a session failed");
                        }
                    }
                    drop(object);
                }
                Release::Task(task) => task(py),
            })
        }));
        match outcome {
            Ok(()) => tracing::debug!("session released"),
            Err(_) => tracing::error!("a panic while releasing a session was caught"),
        }
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if self.rx.is_empty() {
            self.trim_after_wave(done);
        }
    }

    /// After a wave of releases, hand the freed heap back to the OS: glibc keeps it
    /// otherwise, and a BEAM that dropped 10,000 sessions would stay tens of MB larger.
    /// No GIL is needed; it runs on a worker, not a scheduler.
    fn trim_after_wave(&self, done: u64) {
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
