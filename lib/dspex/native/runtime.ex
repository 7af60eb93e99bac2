defmodule DSPex.Native.Runtime do
  @moduledoc false
  # The runtime's place in a supervision tree: `DSPex.Native.start_link/1` (the child spec
  # `{DSPex.Native, opts}`) lands here, whether the application starts it or the user's
  # own supervisor does.
  #
  # Starting checks the settings and the Python environment and starts the embedded
  # runtime before any child exists, so a bad setting is `{:error, %Error{}}` from
  # `start_link/1` (and fails the application's start) instead of a runtime that refuses
  # every call. Python itself then boots on its own thread; `DSPex.Native.await_ready/1`
  # waits for it. One runtime per BEAM (one interpreter per OS process): the supervisor is
  # registered under this module's name.

  use Supervisor
  require Logger

  alias DSPex.Native.{Error, Job, NIF}

  # Option => environment variable read when neither the option nor the application
  # config sets it. Values are checked by the runtime (native/dspex_native/src/config.rs);
  # defaults live there too.
  @settings %{
    python: "DSPEX_PYTHON",
    workers: "DSPEX_WORKERS",
    max_workers: "DSPEX_MAX_WORKERS",
    queue_size: "DSPEX_QUEUE_SIZE",
    history_size: "DSPEX_HISTORY_SIZE",
    trace: "DSPEX_TRACE",
    importable: nil,
    warm: nil,
    test_hooks: nil
  }

  @doc false
  def settings, do: Map.keys(@settings)

  @doc false
  def start_link(opts) do
    with {:ok, config} <- config(opts),
         :ok <- start_runtime(config) do
      Supervisor.start_link(__MODULE__, config, name: __MODULE__)
    end
  end

  @impl true
  def init(_config) do
    children = [
      DSPex.Native.Remote,
      {Task, &report_startup/0},
      # Started last, so stopped first: new calls are refused before the rest goes.
      __MODULE__.Stopper
    ]

    Supervisor.init(children, strategy: :one_for_one)
  end

  defp start_runtime(config) do
    case Job.safe(fn -> NIF.start(config) end) do
      :ok -> :ok
      {:error, error} -> {:error, Error.from_native(error)}
    end
  end

  # Python boots in the background; say so in the log if it cannot.
  defp report_startup do
    case DSPex.Native.await_ready(:infinity) do
      :ok -> :ok
      {:error, error} -> Logger.error("dspex_native: #{error.message}")
    end
  end

  @doc false
  # The settings as the runtime takes them: each from `opts`, else the application config,
  # else its environment variable.
  def config(opts) do
    with :ok <- known(opts) do
      config =
        for {key, env} <- @settings, into: %{} do
          {Atom.to_string(key), setting(opts, key, env)}
        end

      bridge = Path.join(to_string(:code.priv_dir(:dspex_native)), "python")
      {:ok, Map.put(config, "bridge_path", bridge)}
    end
  end

  defp known(opts) do
    cond do
      not Keyword.keyword?(opts) ->
        {:error,
         Error.new(:invalid_argument, "options must be a keyword list, got #{inspect(opts)}")}

      unknown = Enum.find(Keyword.keys(opts), &(not Map.has_key?(@settings, &1))) ->
        {:error,
         Error.new(
           :invalid_argument,
           "unknown option #{inspect(unknown)}; the options are #{inspect(settings())}"
         )}

      true ->
        :ok
    end
  end

  # The venv's own order (config, DSPEX_PYTHON, the library's .venv) is Environment's.
  defp setting(opts, :python, _env) do
    case Keyword.fetch(opts, :python) do
      {:ok, value} -> value
      :error -> DSPex.Native.Environment.venv()
    end
  end

  defp setting(opts, key, env) do
    value =
      case Keyword.fetch(opts, key) do
        {:ok, value} -> value
        :error -> Application.get_env(:dspex_native, key)
      end

    if value == nil and env != nil, do: System.get_env(env), else: value
  end

  defmodule Stopper do
    @moduledoc false
    # Stops the runtime when the tree stops. CPython lives as long as the OS process, so
    # stopping refuses new calls (:not_started), lets running jobs answer, and returns at
    # once; starting the tree again serves again.
    use GenServer

    def start_link(_), do: GenServer.start_link(__MODULE__, nil)

    @impl true
    def init(nil) do
      Process.flag(:trap_exit, true)
      {:ok, nil}
    end

    @impl true
    def terminate(_reason, _state), do: Job.safe(&NIF.stop/0)
  end
end
