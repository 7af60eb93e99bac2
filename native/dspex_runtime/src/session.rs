//! The Rust half of a session: its identity and the one strong reference to its Python
//! object. Whoever drops the last `Arc<SessionCell>` (the BEAM's GC, via the NIF resource,
//! or a worker finishing the last job) hands that reference to a [`Releaser`]: dropping
//! never takes the GIL and never blocks.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use crate::releases::Releaser;

pub struct SessionCell {
    pub id: u64,
    pub name: String,
    closed: AtomicBool,
    /// Only ever locked to move or clone the pointer, never while Python code runs, so a
    /// worker holding the GIL and a scheduler closing the session can never deadlock.
    object: Mutex<Option<Py<PyAny>>>,
    releaser: Releaser,
    /// The count of live sessions this one is part of (`stats().sessions`).
    live: Arc<AtomicUsize>,
}

impl SessionCell {
    pub(crate) fn new(id: u64, name: String, releaser: Releaser, live: Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        SessionCell {
            id,
            name,
            closed: AtomicBool::new(false),
            object: Mutex::new(None),
            releaser,
            live,
        }
    }

    /// How the session is named in messages: `session 3 "user_a"`.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            format!("session {}", self.id)
        } else {
            format!("session {} {:?}", self.id, self.name)
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Py<PyAny>>> {
        self.object.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs the Python object created by the open job; if the session was closed
    /// meanwhile, the object goes straight to the release queue.
    pub(crate) fn install(&self, object: Py<PyAny>) {
        let mut slot = self.slot();
        if self.is_closed() {
            drop(slot);
            self.releaser.release(object);
        } else {
            *slot = Some(object);
        }
    }

    /// A new reference to the Python object, for a job about to run.
    pub(crate) fn object(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.slot().as_ref().map(|o| o.clone_ref(py))
    }

    /// Drops object `number` from the session's table of objects held for Elixir (its
    /// `%Ref{}` was collected), on a worker under the GIL. Never takes the GIL here, never
    /// blocks; nothing to do if the session was released meanwhile (its table went with it).
    pub fn release_ref(self: &Arc<Self>, number: u64) {
        let cell = Arc::clone(self);
        self.releaser.run_later(Box::new(move |py| {
            let Some(object) = cell.object(py) else {
                return;
            };
            let released = py
                .import("dspex_bridge")
                .and_then(|bridge| bridge.getattr("release_ref"))
                .and_then(|release| release.call1((object.bind(py), number)));
            if let Err(e) = released {
                tracing::warn!(error = %e, "releasing a ref failed");
            }
        }));
    }

    /// Closes the session: later calls fail with `:closed`; the Python object is released
    /// by a worker. Idempotent, and never takes the GIL.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let taken = self.slot().take();
        if let Some(object) = taken {
            self.releaser.release(object);
        }
    }
}

impl Drop for SessionCell {
    fn drop(&mut self) {
        self.close();
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}
