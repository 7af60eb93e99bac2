//! Atoms the NIF surface returns.

rustler::atoms! {
    /// The registered name of the process told about collected remote handles.
    remote_process = "Elixir.DSPex.Native.Remote",
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
    ops,
    user_code_ops,
    global_ops,
    reasons,
}
