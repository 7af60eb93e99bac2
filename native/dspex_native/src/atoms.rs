//! Atoms the NIF surface returns.

rustler::atoms! {
    ok,
    error,
    nil,
    idle,
    starting,
    ready,
    failed,
    cancelled,
    running_cancelled,
    sent,
    dirty,
    callback,
    output,
    dspex_remote_dropped,
}
