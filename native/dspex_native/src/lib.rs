//! dspex_native: the NIF that lets Elixir own DSPy sessions.
//!
//! - [`nif`]: the functions `DSPex.Native.NIF` exposes (thin: decode, queue, return);
//! - [`call_back`]: Python's output and calls back to the caller, and the caller's answers;
//! - [`resource`]: the session and job resources the BEAM garbage-collects;
//! - [`term_codec`]: Erlang terms to bridge values and back;
//! - [`relay`]: tells other nodes when a handle to their session is collected.
//!
//! Everything that touches Python lives in the `dspex_runtime` crate.

mod atoms;
mod call_back;
mod nif;
mod relay;
mod resource;
mod term_codec;

/// Panics are caught (rustler turns a NIF's panic into an exception, the pool turns a
/// worker's into an error), so one line on stderr is enough; no backtrace spill.
fn load(_env: rustler::Env, _info: rustler::Term) -> bool {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("dspex_native: caught a panic at {location}: {payload}");
    }));
    true
}

rustler::init!("Elixir.DSPex.Native.NIF", load = load);
