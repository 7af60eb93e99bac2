//! The runtime's events (`dspex_runtime::Event`: ready, warm, pool changes, trace lines) for
//! the subscribed Elixir process, `DSPex.Native.Events`.
//!
//! The runtime wakes the subscriber with one message, `:dspex_native_events`, when events
//! start to wait; the process then calls `events_take/0` for the batch. A wake-up can only
//! be sent from a thread the BEAM does not manage (`enif_send` without an environment):
//! an event emitted on a scheduler (a trace line from a NIF) waits for the next wake-up
//! or take, which is why `events_subscribe/2` and `events_take/0` say whether more wait.

use std::sync::Arc;

use rustler::env::OwnedEnv;
use rustler::{Encoder, Env, LocalPid, NifResult, Term};

use dspex_runtime::{Event, Sink};

use crate::atoms;

/// Events one take returns at most (a short NIF on a normal scheduler).
const BATCH: usize = 256;

struct Doorbell(LocalPid);

impl Sink for Doorbell {
    fn wake(&self) -> bool {
        if rustler::thread::is_scheduler_thread() {
            return false;
        }
        OwnedEnv::new()
            .send_and_clear(&self.0, |env| atoms::dspex_native_events().encode(env))
            .is_ok()
    }
}

/// Makes `pid` the subscriber; `lm_calls` says whether jobs report each LM call to their
/// caller (`%{"kind" => "lm"}` output). Returns whether events wait (take them).
#[rustler::nif]
fn events_subscribe(pid: LocalPid, lm_calls: bool) -> bool {
    dspex_runtime::report_lm_calls(lm_calls);
    dspex_runtime::subscribe_events(Arc::new(Doorbell(pid)))
}

/// `{events, dropped, more}`: the waiting events, oldest first, how many were dropped
/// since the last take (the queue was full), and whether more wait. Each event is one of
/// `{:ready, %{total_ms, init_ms, import_ms}, %{python_version, dspy_version, venv}}`,
/// `{:warm, ms, error_or_nil}`, `{:pool_grew, added, alive}`, `{:pool_shrank, alive}` and
/// `{:trace, level, target, message}` (times in float milliseconds).
#[rustler::nif]
fn events_take(env: Env<'_>) -> NifResult<Term<'_>> {
    let taken = dspex_runtime::take_events(BATCH);
    let events = taken
        .events
        .iter()
        .map(|event| encode(env, event))
        .collect::<NifResult<Vec<_>>>()?;
    Ok((events, taken.dropped, taken.more).encode(env))
}

fn encode<'a>(env: Env<'a>, event: &Event) -> NifResult<Term<'a>> {
    Ok(match event {
        Event::Ready(r) => {
            let times = rustler::types::map::map_new(env)
                .map_put(atoms::total_ms(), r.total_ms)?
                .map_put(atoms::init_ms(), r.init_ms)?
                .map_put(atoms::import_ms(), r.import_ms)?;
            let about = rustler::types::map::map_new(env)
                .map_put(atoms::python_version(), r.python_version.as_str())?
                .map_put(atoms::dspy_version(), r.dspy_version.as_str())?
                .map_put(atoms::venv(), r.venv.as_str())?;
            (atoms::ready(), times, about).encode(env)
        }
        Event::Warm { millis, error } => (atoms::warm(), *millis, error.as_deref()).encode(env),
        Event::PoolGrew { added, alive } => (atoms::pool_grew(), *added, *alive).encode(env),
        Event::PoolShrank { alive } => (atoms::pool_shrank(), *alive).encode(env),
        Event::Trace {
            level,
            target,
            message,
        } => {
            let level = rustler::Atom::from_str(env, level.name())?;
            (atoms::trace(), level, target.as_str(), message.as_str()).encode(env)
        }
    })
}
