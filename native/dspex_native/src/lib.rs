//! dspex_native: the NIF that lets Elixir own DSPy sessions.
//!
//! - [`config`]: the start-up settings Elixir passes, as the runtime's `Config`;
//! - [`nif`]: the functions `DSPex.Native.NIF` exposes (thin: decode, queue, return);
//! - [`callbacks`]: Python's output and calls back to the caller, and the caller's answers;
//! - [`events`]: the runtime's events (ready, warm, pool changes, trace lines) for the
//!   subscribed Elixir process;
//! - [`resource`]: the session, job, function and remote-handle resources the BEAM collects;
//! - [`term_codec`]: Erlang terms to bridge values and back.
//!
//! Everything that touches Python lives in the `dspex_runtime` crate.

/// Declares a pair of twin NIFs returning `Term` over `imp(args..., budget)`: `$normal` on a normal
/// scheduler decodes on a budget (and answers `:dirty` when a term is too big), `$dirty`
/// on a dirty CPU scheduler decodes anything. Elixir calls the second after the first.
macro_rules! twin_nifs {
    // With the calling process's environment: the macro itself declares `env` (rustler's
    // generated wrapper binds it in this macro's hygiene context, not the caller's).
    (
        $(#[$doc:meta])*
        fn $normal:ident / $dirty:ident <$a:lifetime> (env, $($params:tt)*)
            = $imp:ident(env, $($arg:ident),*)
    ) => {
        $(#[$doc])*
        #[rustler::nif]
        fn $normal<$a>(env: rustler::Env<$a>, $($params)*) -> Term<$a> {
            $imp(env, $($arg,)* Some($crate::term_codec::NORMAL_BUDGET))
        }

        $(#[$doc])*
        /// (On a dirty CPU scheduler, without a budget.)
        #[rustler::nif(schedule = "DirtyCpu")]
        fn $dirty<$a>(env: rustler::Env<$a>, $($params)*) -> Term<$a> {
            $imp(env, $($arg,)* None)
        }
    };
    // Parameters pass as plain tokens: rustler's attribute cannot read `ty` fragments.
    (
        $(#[$doc:meta])*
        fn $normal:ident / $dirty:ident <$a:lifetime> ($($params:tt)*) = $imp:ident($($arg:ident),*)
    ) => {
        $(#[$doc])*
        #[rustler::nif]
        fn $normal<$a>($($params)*) -> Term<$a> {
            $imp($($arg,)* Some($crate::term_codec::NORMAL_BUDGET))
        }

        $(#[$doc])*
        /// (On a dirty CPU scheduler, without a budget.)
        #[rustler::nif(schedule = "DirtyCpu")]
        fn $dirty<$a>($($params)*) -> Term<$a> {
            $imp($($arg,)* None)
        }
    };
}

mod atoms;
mod callbacks;
mod config;
mod events;
mod nif;
mod resource;
mod term_codec;

/// Panics are caught (rustler turns a NIF's panic into an exception, the pool turns a
/// worker's into an error), so one line is enough; no backtrace spill. With test hooks on
/// (the test suites provoke panics on purpose) the line goes to the trace instead of stderr.
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
        if dspex_runtime::pool().is_some_and(|pool| pool.test_hooks()) {
            tracing::warn!(location, payload, "caught a panic");
        } else {
            eprintln!("dspex_native: caught a panic at {location}: {payload}");
        }
    }));
    true
}

rustler::init!("Elixir.DSPex.Native.NIF", load = load);
