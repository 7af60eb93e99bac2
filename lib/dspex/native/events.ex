defmodule DSPex.Native.Events do
  @moduledoc """
  Reports what the runtime does outside any call, as `:telemetry` events (see
  `DSPex.Native.Telemetry`) and Logger lines:

  * `info`: Python is ready, with the Python and DSPy versions, the venv and how long
    start-up took; the LM client stack (litellm) is imported (a `warning` if that failed);
  * `debug`: the pool grew or shrank;
  * the trace (`DSPEX_TRACE` / `config :dspex_native, trace: "debug"`), each line at its
    own level, with `dspex_trace:` (the Rust module) in the metadata;
  * `warning`: events were dropped because they came faster than this process took them.

  The runtime keeps its events in a bounded queue and wakes this process when some wait; a
  Python worker or a traced thread never waits for it. The application starts it; events
  from before it subscribed wait for it. It also tells the runtime whether to report each
  LM call (only when `:telemetry` is loaded).
  """

  use GenServer
  require Logger

  alias DSPex.Native.{Job, NIF, Telemetry}

  @doc """
  Starts the process that takes the runtime's events (one per BEAM; a later one takes over).

  ## Examples

      children = [DSPex.Native.Events]
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @impl true
  def init(_opts) do
    # LM calls are reported to their callers only for telemetry: without it they cost nothing.
    case Job.safe(fn -> NIF.events_subscribe(self(), Telemetry.enabled?()) end) do
      true -> send(self(), :dspex_native_events)
      # Nothing waits, or the NIF is not loaded (every call says so itself).
      _ -> :ok
    end

    {:ok, nil}
  end

  @impl true
  def handle_info(:dspex_native_events, state) do
    {events, dropped, more} = NIF.events_take()
    Enum.each(events, &report/1)

    if dropped > 0,
      do: Logger.warning("dspex_native: #{dropped} runtime events dropped (they came too fast)")

    if more, do: send(self(), :dspex_native_events)
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}

  defp report({:ready, times, about}) do
    Telemetry.execute(
      [:dspex_native, :runtime, :ready],
      %{
        duration: Telemetry.native(times.total_ms),
        init_time: Telemetry.native(times.init_ms),
        import_time: Telemetry.native(times.import_ms)
      },
      about
    )

    Logger.info(
      "dspex_native: Python #{about.python_version} ready in #{time(times.total_ms)} " <>
        "(DSPy #{about.dspy_version}, venv #{about.venv}; interpreter #{time(times.init_ms)}, " <>
        "import #{time(times.import_ms)})"
    )
  end

  defp report({:warm, ms, error}) do
    Telemetry.execute([:dspex_native, :runtime, :warm], %{duration: Telemetry.native(ms)}, %{
      error: error
    })

    if error do
      Logger.warning(
        "dspex_native: importing the LM client stack (litellm) failed after #{time(ms)}: #{error}"
      )
    else
      Logger.info("dspex_native: LM client stack (litellm) imported in #{time(ms)}")
    end
  end

  defp report({:pool_grew, added, alive}) do
    Telemetry.execute([:dspex_native, :pool, :grow], %{workers_alive: alive, added: added}, %{})
    Logger.debug("dspex_native: the pool grew by #{added} to #{alive} workers (calls waited)")
  end

  defp report({:pool_shrank, alive}) do
    Telemetry.execute([:dspex_native, :pool, :shrink], %{workers_alive: alive, retired: 1}, %{})
    Logger.debug("dspex_native: an idle worker retired, #{alive} left")
  end

  defp report({:trace, level, target, message}),
    do: Logger.log(level, message, dspex_trace: target)

  defp time(ms) when ms < 1_000, do: "#{round(ms)} ms"
  defp time(ms), do: "#{Float.round(ms / 1_000, 2)} s"
end
