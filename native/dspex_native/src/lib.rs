//! dspex_native: the NIF that lets Elixir own DSPy sessions.
//!
//! - [`nif`]: the functions `DSPex.Native.NIF` exposes (thin: decode, queue, return);
//! - [`resource`]: the session and job resources the BEAM garbage-collects;
//! - [`term_codec`]: Erlang terms to bridge values and back.
//!
//! Everything that touches Python lives in the `dspex_runtime` crate.

mod atoms;
mod nif;
mod resource;
mod term_codec;

rustler::init!("Elixir.DSPex.Native.NIF");
