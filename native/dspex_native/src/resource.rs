//! The NIF resources Elixir holds: a session, and a job in flight (for cancellation).
//!
//! Dropping a session resource (the BEAM's GC) drops its `Arc<SessionCell>`; the cell hands
//! its Python object to the pool's release queue. Nothing here takes the GIL or blocks.

use std::sync::Arc;

use dspex_runtime::{Gate, SessionCell};

pub struct SessionResource {
    pub cell: Arc<SessionCell>,
}

#[rustler::resource_impl]
impl rustler::Resource for SessionResource {}

pub struct JobResource {
    pub gate: Arc<Gate>,
}

#[rustler::resource_impl]
impl rustler::Resource for JobResource {}
