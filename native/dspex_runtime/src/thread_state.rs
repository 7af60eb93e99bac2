//! The raw CPython thread-state calls (FFI) the runtime's own threads make: keeping a
//! thread state for a thread's whole life, naming the running Python thread, and raising
//! or clearing an asynchronous exception in it. Kept here, small and in one place, because
//! each is `unsafe` and each has a rule about the GIL.

use pyo3::ffi;
use pyo3::prelude::*;

/// A Python thread state kept for as long as this value lives on its thread, without
/// holding the GIL. Otherwise every `Python::attach` creates a thread state and every
/// release destroys it (PyGILState's counter drops to zero): tens of microseconds per job,
/// and Python sees a new "dummy" thread each time.
pub struct KeptThreadState {
    state: ffi::PyGILState_STATE,
    saved: *mut ffi::PyThreadState,
}

impl KeptThreadState {
    /// Keeps a thread state for the calling thread. Only call once Python is initialised.
    pub fn keep() -> KeptThreadState {
        // SAFETY: the caller guarantees Python is initialised. SaveThread leaves the GIL
        // free while keeping the thread state.
        unsafe {
            let state = ffi::PyGILState_Ensure();
            KeptThreadState {
                state,
                saved: ffi::PyEval_SaveThread(),
            }
        }
    }
}

impl Drop for KeptThreadState {
    fn drop(&mut self) {
        // SAFETY: undoes `keep` on the same thread (the type is neither Send nor Sync, as
        // it holds a raw pointer), in reverse order.
        unsafe {
            ffi::PyEval_RestoreThread(self.saved);
            ffi::PyGILState_Release(self.state);
        }
    }
}

/// The Python thread ident of the calling thread.
pub fn current_ident(_py: Python<'_>) -> u64 {
    // SAFETY: reads the current thread's identity; the GIL is held (`_py`).
    unsafe { ffi::PyThread_get_thread_ident() as u64 }
}

/// Raises `exception` asynchronously in the Python thread `ident`; returns how many
/// threads were affected (0 or 1).
pub fn raise_in(py: Python<'_>, ident: u64, exception: &Py<PyAny>) -> i32 {
    // SAFETY: the GIL is held; `exception` outlives the call.
    unsafe { ffi::PyThreadState_SetAsyncExc(ident as libc::c_long, exception.bind(py).as_ptr()) }
}

/// Clears an asynchronous exception pending in the Python thread `ident`: an interrupt
/// that came too late to matter must not hit the thread's next job.
pub fn clear_pending(_py: Python<'_>, ident: u64) {
    // SAFETY: NULL clears the thread's pending async exception; the GIL is held (`_py`).
    unsafe { ffi::PyThreadState_SetAsyncExc(ident as libc::c_long, std::ptr::null_mut()) };
}
