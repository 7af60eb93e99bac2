//! A unit of work for the pool: where it runs, what it does, and how its answer and its
//! messages reach the caller (through its [`Gate`]).

use std::sync::Arc;
use std::time::Instant;

use crate::callbacks::ToCaller;
use crate::gate::{Deliver, Gate};
use crate::op::{GlobalOp, Op};
use crate::session::SessionCell;
use crate::value::Value;

/// Where a job runs, and what it does there.
pub enum Target {
    /// An operation that belongs to no session (`ping`, `stats`).
    Global(GlobalOp),
    /// Creates the Python side of a new session (`args` is the LM spec).
    Open(Arc<SessionCell>),
    /// An operation on an open session.
    Session(Arc<SessionCell>, Op),
}

impl Target {
    /// The operation's name, for traces and messages.
    pub fn op_name(&self) -> &'static str {
        match self {
            Target::Global(op) => op.name(),
            Target::Open(_) => "open",
            Target::Session(_, op) => op.name(),
        }
    }

    /// The session's id, 0 for global operations.
    pub fn session_id(&self) -> u64 {
        match self {
            Target::Global(_) => 0,
            Target::Open(cell) | Target::Session(cell, _) => cell.id,
        }
    }
}

pub struct Job {
    pub target: Target,
    pub args: Value,
    pub gate: Arc<Gate>,
    pub deliver: Deliver,
    /// How Python reaches the caller while the job runs (tools, metrics, output), if it may.
    pub to_caller: Option<ToCaller>,
    /// When it was queued: its answer says how long it waited for a worker.
    pub enqueued: Instant,
}
