//! The NIF resources Elixir holds: a session, and a job in flight.
//!
//! Nothing here takes the GIL or blocks: dropping a session hands its Python object to the
//! pool's release queue; dropping a job nobody can answer any more cancels it, and asks the
//! runtime's Python thread to interrupt it if it is running.

use std::sync::Arc;

use rustler::{Env, LocalPid, Monitor, Resource};

use dspex_runtime::{Cancelled, Gate, SessionCell};

pub struct SessionResource {
    pub cell: Arc<SessionCell>,
}

#[rustler::resource_impl]
impl Resource for SessionResource {
    /// The session's owner (`open(owner: pid)`) exited: close it, wherever its handle is.
    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _monitor: Monitor) {
        tracing::debug!(session = self.cell.id, "owner exited; closing the session");
        self.cell.close();
    }
}

/// A job in flight. The caller holds it while it waits; when the caller gives up or dies,
/// the BEAM drops it, and the job with it.
pub struct JobResource {
    pub gate: Arc<Gate>,
}

#[rustler::resource_impl]
impl Resource for JobResource {}

impl JobResource {
    /// Cancels the job; interrupts it if its Python code is running.
    pub fn cancel(&self) -> Cancelled {
        let outcome = self.gate.cancel();
        if outcome == (Cancelled::Stopped { was_running: true }) {
            if let Some(pool) = dspex_runtime::pool() {
                pool.interrupt(self.gate.clone());
            }
        }
        outcome
    }
}

impl Drop for JobResource {
    fn drop(&mut self) {
        // After a delivered answer this is a no-op; otherwise nobody can receive it.
        self.cancel();
    }
}
