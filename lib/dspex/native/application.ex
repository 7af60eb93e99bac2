defmodule DSPex.Native.Application do
  @moduledoc """
  Starts the embedded Python runtime when `:dspex_native` starts.

  Start-up returns at once: CPython initialises and imports DSPy (about a second) on a
  thread of its own, so no scheduler waits. Calls made meanwhile queue up and run once it
  is ready. If Python cannot start (no environment, a mismatched one, no dspy), every call
  returns `{:error, %DSPex.Native.Error{reason: :not_started}}` naming the cause.

  ## Configuration

  Each key can be set in `config :dspex_native, ...` or through the environment variable
  shown; the application config wins.

  | key | environment | default | meaning |
  | --- | --- | --- | --- |
  | `:python` | `DSPEX_PYTHON` | the venv the NIF was built against | a venv directory or its `bin/python` |
  | `:workers` | `DSPEX_WORKERS` | 4 × cores, 4..32 | Python worker threads kept ready |
  | `:max_workers` | `DSPEX_MAX_WORKERS` | 64 | the pool grows to this many threads while calls wait for a worker (LM calls wait on HTTP without the GIL); extra threads retire after 10 s idle |
  | `:queue_size` | `DSPEX_QUEUE_SIZE` | 10000 | jobs that may wait before calls get `:overloaded` |
  | `:history_size` | `DSPEX_HISTORY_SIZE` | 100 | LM calls each session's LM and programs remember (DSPy keeps 10000) |
  | `:trace` | `DSPEX_TRACE` | off | a tracing filter (`"info"`, `"debug"`) for the pool's spans, on stderr |
  | `:warm` | | `true` | import litellm in the background once Python is up |
  | `:importable` | | `["dspy"]` | the roots `DSPex.Native.Py` may resolve dotted paths under |
  """

  use Application
  require Logger

  alias DSPex.Native.{Job, NIF}

  @impl true
  def start(_type, _args) do
    case Job.safe(fn -> NIF.start(config()) end) do
      :ok -> :ok
      {:error, {_, message, _, _}} -> Logger.error("dspex_native: #{message}")
    end

    # Events first: it reports the runtime's start-up (events from before it wait for it).
    children = [DSPex.Native.Events, DSPex.Native.Remote, {Task, &report_startup/0}]
    Supervisor.start_link(children, strategy: :one_for_one, name: DSPex.Native.Supervisor)
  end

  @impl true
  def prep_stop(state) do
    # CPython lives as long as the OS process; stopping the application refuses new calls
    # (:not_started), lets running jobs answer, and returns at once.
    Job.safe(&NIF.stop/0)
    state
  end

  # Python boots in the background; say so in the log if it cannot.
  defp report_startup do
    case DSPex.Native.await_ready(:infinity) do
      :ok -> :ok
      {:error, error} -> Logger.error("dspex_native: #{error.message}")
    end
  end

  @doc false
  def config do
    %{
      "python" => string(setting(:python, "DSPEX_PYTHON")),
      "workers" => setting(:workers, "DSPEX_WORKERS"),
      "max_workers" => setting(:max_workers, "DSPEX_MAX_WORKERS"),
      "queue_size" => setting(:queue_size, "DSPEX_QUEUE_SIZE"),
      "history_size" => setting(:history_size, "DSPEX_HISTORY_SIZE"),
      "importable" => Application.get_env(:dspex_native, :importable),
      "trace" => string(setting(:trace, "DSPEX_TRACE")),
      "warm" => Application.get_env(:dspex_native, :warm, true),
      "test_hooks" => Application.get_env(:dspex_native, :test_hooks, false),
      "bridge_path" => Path.join(to_string(:code.priv_dir(:dspex_native)), "python")
    }
  end

  defp setting(key, env) do
    case Application.get_env(:dspex_native, key) do
      nil -> System.get_env(env)
      value -> value
    end
  end

  defp string(nil), do: nil
  defp string(value), do: to_string(value)
end
