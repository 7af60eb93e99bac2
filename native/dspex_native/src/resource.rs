//! The NIF resources Elixir holds: a session, and a job in flight.
//!
//! Nothing here takes the GIL or blocks: dropping a session hands its Python object to the
//! pool's release queue; dropping a job nobody can answer any more cancels it, and asks the
//! runtime's Python thread to interrupt it if it is running.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustler::env::{OwnedEnv, SavedTerm};
use rustler::{Env, LocalPid, Monitor, Resource, Term};

use dspex_runtime::{Cancelled, Gate, SessionCell};

pub struct SessionResource {
    pub cell: Arc<SessionCell>,
    /// Elixir functions Python may call back (ReAct tools, metrics), by key. They live as
    /// long as the session handle, and go with it.
    pub callbacks: Mutex<Callbacks>,
}

impl SessionResource {
    pub fn new(cell: Arc<SessionCell>) -> Self {
        SessionResource {
            cell,
            callbacks: Mutex::new(Callbacks {
                env: OwnedEnv::new(),
                funs: HashMap::new(),
            }),
        }
    }
}

pub struct Callbacks {
    env: OwnedEnv,
    funs: HashMap<String, SavedTerm>,
}

impl Callbacks {
    pub fn put(&mut self, key: String, fun: Term<'_>) {
        let saved = self.env.save(fun);
        self.funs.insert(key, saved);
    }

    /// Every function, copied into `env`, as `(key, fun)` pairs.
    pub fn copy_into<'a>(&self, env: Env<'a>) -> Vec<(String, Term<'a>)> {
        self.funs
            .iter()
            .map(|(key, saved)| (key.clone(), self.env.run(|own| saved.load(own).in_env(env))))
            .collect()
    }
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

/// The caller's side of a session that lives on another node. When the BEAM collects the
/// last handle, the destructor queues a note for the relay thread, which tells the local
/// `DSPex.Native.Remote` process, which tells the session's node. Nothing here blocks.
pub struct RemoteHandle {
    pub node: String,
    pub id: u64,
}

#[rustler::resource_impl]
impl Resource for RemoteHandle {}

impl Drop for RemoteHandle {
    fn drop(&mut self) {
        crate::relay::dropped(std::mem::take(&mut self.node), self.id);
    }
}
