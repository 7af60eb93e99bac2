//! The NIF resources Elixir holds: a session, a job in flight, and a function kept for
//! Python to call back.
//!
//! Nothing here takes the GIL or blocks: dropping a session hands its Python object to the
//! pool's release queue; dropping a job nobody can answer any more cancels it, and asks the
//! runtime's Python thread to interrupt it if it is running; dropping a function frees its
//! saved copy.

use std::sync::{Arc, Mutex};

use rustler::env::{OwnedEnv, SavedTerm};
use rustler::{Env, LocalPid, Monitor, Resource, Term};

use crate::atoms;

use dspex_runtime::{Cancelled, Gate, GateState, SessionCell};

pub struct SessionResource {
    pub cell: Arc<SessionCell>,
}

impl SessionResource {
    pub fn new(cell: Arc<SessionCell>) -> Self {
        SessionResource { cell }
    }
}

/// A `%DSPex.Native.Ref{}`'s handle: object `number` of a session's table of objects held
/// for Elixir. When the BEAM collects it, the object leaves the table on a worker; the
/// destructor only queues that (no GIL, no blocking). It keeps the session's cell alive,
/// as a ref keeps its session.
pub struct RefHandle {
    pub cell: Arc<SessionCell>,
    pub number: u64,
}

#[rustler::resource_impl]
impl Resource for RefHandle {}

impl Drop for RefHandle {
    fn drop(&mut self) {
        self.cell.release_ref(self.number);
    }
}

/// An Elixir function that Python may call back (a ReAct tool, a compile metric). Elixir
/// passes this handle where a tool's key goes; Python keeps it, as an opaque object, inside
/// the program that uses it, and hands it back with each call. The function therefore
/// lives exactly as long as its program (and any Elixir term still holding the handle):
/// replacing, deleting or resetting programs, or closing the session, frees it. A handle
/// is its own key, so two tools can never be mistaken for each other.
pub struct FunHandle {
    /// Its own environment, so that dropping the handle frees the copy.
    saved: Mutex<(OwnedEnv, SavedTerm)>,
}

impl FunHandle {
    pub fn new(fun: Term<'_>) -> Self {
        let env = OwnedEnv::new();
        let saved = env.save(fun);
        FunHandle {
            saved: Mutex::new((env, saved)),
        }
    }

    /// The function, copied into `env` (a message being built on a worker thread).
    pub fn load<'a>(&self, env: Env<'a>) -> Term<'a> {
        let saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        let (own, fun) = &*saved;
        own.run(|own| fun.load(own).in_env(env))
    }
}

#[rustler::resource_impl]
impl Resource for FunHandle {}

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
        let before = self.gate.state();
        let outcome = self.gate.cancel();
        if let (Cancelled::Stopped { was_running }, Some(pool)) = (outcome, dspex_runtime::pool()) {
            if matches!(before, GateState::Queued | GateState::Running) {
                pool.count_cancelled();
            }
            if was_running {
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
/// last handle, the destructor tells the local `DSPex.Native.Remote` process, which tells
/// the session's node: `{:dspex_remote_dropped, node, id}`.
///
/// The destructor sends directly. ERTS runs resource destructors as aux work on a normal
/// scheduler with a process-independent callback environment (`run_resource_dtor` in
/// erl_nif.c; destructors of resources freed off-scheduler are handed to scheduler 1),
/// and `enif_whereis_pid` and `enif_send` accept a callback environment: neither blocks
/// (a send to a dead or unregistered process is dropped). Verified on OTP 25 (erts
/// 13.1.5) by test/cluster_test.exs: a handle collected on this node frees its session.
pub struct RemoteHandle {
    pub node: String,
    pub id: u64,
}

#[rustler::resource_impl]
impl Resource for RemoteHandle {
    fn destructor(self, env: Env<'_>) {
        let Some(remote) = env.whereis_pid(atoms::remote_process()) else {
            return;
        };
        let _ = env.send(
            &remote,
            (atoms::dspex_remote_dropped(), self.node.as_str(), self.id),
        );
    }
}
