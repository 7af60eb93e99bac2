//! The control thread (`dspex-control`): delivers interrupts to cancelled jobs and checks,
//! every few milliseconds, whether the pool must grow.
//!
//! An interrupt raises `dspex_bridge.Cancelled` in the worker running a cancelled job.
//! Holding the GIL, the worker cannot enter or leave the job's Python code meanwhile, so
//! the exception can only land in the job it is meant for (and the worker clears a pending
//! one as each job ends). It runs on a thread of its own so that no BEAM scheduler ever
//! waits for the GIL, and so that interrupts never wait behind the workers.

use crossbeam_channel::RecvTimeoutError;
use pyo3::prelude::*;

use crate::pool::Pool;
use crate::thread_state::{self, KeptThreadState};
use crate::workers::{self, GROW_AFTER};

/// Starts the control thread.
pub fn spawn(pool: &'static Pool) {
    std::thread::Builder::new()
        .name("dspex-control".into())
        .spawn(move || serve(pool))
        .expect("spawning the dspex control thread");
}

fn serve(pool: &'static Pool) {
    let _kept = pool.engine.get().map(|_| KeptThreadState::keep());
    loop {
        let gate = match pool.interrupts_rx.recv_timeout(GROW_AFTER) {
            Ok(gate) => gate,
            Err(RecvTimeoutError::Timeout) => {
                workers::grow_if_stalled(pool);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        workers::grow_if_stalled(pool);
        let Some(engine) = pool.engine.get() else {
            continue;
        };
        Python::attach(|py| {
            if let Some(thread) = gate.interrupt_target() {
                let n = thread_state::raise_in(py, thread, &engine.cancelled);
                tracing::debug!(thread, interrupted = n, "interrupting a cancelled job");
            }
        });
    }
}
