defmodule DSPex.Native.Application do
  @moduledoc """
  Starts the embedded Python runtime when `:dspex_native` starts, unless
  `config :dspex_native, start: false`: then place `{DSPex.Native, opts}` in your own
  supervision tree (see `DSPex.Native.start_link/1`).

  Start-up checks every setting and the Python environment (it exists, was made by the
  Python the NIF is linked against, has dspy) and fails with an error naming what is wrong;
  when the application starts the runtime itself, that fails the application's start.
  Python then initialises and imports DSPy (about a second) on a thread of its own, so no
  scheduler waits: calls made meanwhile queue up and run once it is ready. If Python
  fails past those checks (a broken install), every call returns
  `{:error, %DSPex.Native.Error{reason: :not_started}}` naming the cause.

  ## Configuration

  Each key can be given as an option to `DSPex.Native.start_link/1`, set in
  `config :dspex_native, ...`, or through the environment variable shown, in that order of
  precedence. Settings are read when the runtime starts (in a release:
  `config/runtime.exs` or the environment at boot).

  | key | environment | default | meaning |
  | --- | --- | --- | --- |
  | `:start` | | `true` | start the runtime with the application; `false` leaves it to your supervision tree (application config only) |
  | `:python` | `DSPEX_PYTHON` | the library's own `.venv` (see `mix dspex_native.setup`) | the venv that runs: a directory or its `bin/python` |
  | `:workers` | `DSPEX_WORKERS` | 4 × cores, 4..32 | Python worker threads kept ready |
  | `:max_workers` | `DSPEX_MAX_WORKERS` | 64 | the pool grows to this many threads while calls wait for a worker (LM calls wait on HTTP without the GIL); extra threads retire after 10 s idle |
  | `:queue_size` | `DSPEX_QUEUE_SIZE` | 10000 | jobs that may wait before calls get `:overloaded` |
  | `:history_size` | `DSPEX_HISTORY_SIZE` | 100 | LM calls each session's LM and programs remember (DSPy keeps 10000) |
  | `:trace` | `DSPEX_TRACE` | off | a tracing filter (`"info"`, `"debug"`) for the pool's spans, logged through Logger |
  | `:warm` | | `true` | import litellm in the background once Python is up and the pool has been quiet for 50 ms (within 5 s), so the first calls do not share the GIL with the import |
  | `:importable` | | `["dspy"]` | the roots `DSPex.Native.Py` may resolve dotted paths under |

  One BEAM runs one Python interpreter: stopping the runtime refuses new calls and lets
  running jobs answer; starting it again serves again, with the settings it first started
  with (another `:python` is refused).
  """

  use Application

  @impl true
  def start(_type, _args) do
    # Events always, and first: it reports the runtime's start-up wherever the runtime runs
    # (here, or in the user's tree with `start: false`); events from before it wait for it.
    runtime = if Application.get_env(:dspex_native, :start, true), do: [DSPex.Native], else: []
    children = [DSPex.Native.Events | runtime]
    Supervisor.start_link(children, strategy: :one_for_one, name: DSPex.Native.Supervisor)
  end
end
