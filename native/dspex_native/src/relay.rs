//! Tells the local `DSPex.Native.Remote` process about collected remote-session handles.
//!
//! A resource destructor runs on a scheduler and must not block or send from there; it
//! pushes `(node, id)` onto a channel, and this thread (not a scheduler, so it may use
//! `OwnedEnv::send_and_clear`) messages `{:dspex_remote_dropped, node, id}` to the process
//! registered with `remote_relay/1`.

use std::sync::{Mutex, OnceLock};

use crossbeam_channel::{unbounded, Receiver, Sender};
use rustler::env::OwnedEnv;
use rustler::{Encoder, LocalPid};

struct Relay {
    tx: Sender<(String, u64)>,
    target: Mutex<Option<LocalPid>>,
}

static RELAY: OnceLock<Relay> = OnceLock::new();

fn relay() -> &'static Relay {
    RELAY.get_or_init(|| {
        let (tx, rx) = unbounded();
        std::thread::Builder::new()
            .name("dspex-relay".into())
            .spawn(move || serve(rx))
            .expect("spawning the dspex relay thread");
        Relay {
            tx,
            target: Mutex::new(None),
        }
    })
}

fn serve(rx: Receiver<(String, u64)>) {
    for (node, id) in rx {
        let target = *relay().target.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pid) = target {
            let _ = OwnedEnv::new().send_and_clear(&pid, |env| {
                (crate::atoms::dspex_remote_dropped(), node, id).encode(env)
            });
        }
    }
}

/// Registers the process that forwards drops to the sessions' nodes.
pub fn set_target(pid: LocalPid) {
    *relay().target.lock().unwrap_or_else(|p| p.into_inner()) = Some(pid);
}

/// Called from `RemoteHandle`'s destructor: never blocks.
pub fn dropped(node: String, id: u64) {
    let _ = relay().tx.send((node, id));
}
