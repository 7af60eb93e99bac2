defmodule Bench.Host do
  # A sample more than this many times the fastest of the run falls in an episode.
  @slow 2.0
  # Where a run waits to start: this machine kind's calm round trip (45–100 ns), with room.
  @calm_ns 150

  @moduledoc """
  The host under the machine: how long two CPUs take to pass a cache line back and forth
  (`cross_core.rs`, built here with `rustc`). On this project's machine kind (a VM with 2
  vCPUs) a round trip between them takes 45–100 ns, and 350–400 ns in episodes of ten
  seconds to minutes that come from the host (a plain two-thread program shows them;
  nothing in the VM changes). While one lasts, every call that crosses threads costs more:
  a ping 2.5 → 5.4 µs, a Predict through the pool ~4% more.

  A run waits (up to 2 minutes) for a sample of at most #{@calm_ns} ns before its first row;
  then the reference is the fastest sample of the run, and a sample more than #{@slow}× it is
  an episode: turns start only outside one, and a turn after which the host was in one is
  run again (`Bench.Measure.rounds/3`).
  """

  @source Path.expand("cross_core.rs", __DIR__)
  @binary Path.expand("../../tmp/bench/cross_core", __DIR__)

  @doc """
  Builds and starts the probe, then waits (up to `timeout` ms) for a calm host. Returns
  `{:ok, ns}` (the last sample), `{:episode, ns}` when the host never got below
  #{@calm_ns} ns, or `{:error, why}` (no probe: every sample is nil).
  """
  def start(timeout \\ 120_000) do
    with :ok <- build(), {:ok, port} <- open(), ns when is_number(ns) <- ask(port) do
      :persistent_term.put(__MODULE__, %{port: port, best: ns})
      deadline = System.monotonic_time(:millisecond) + timeout

      ns = await_sample(&(&1 <= @calm_ns), deadline, 1_000)
      if ns <= @calm_ns, do: {:ok, ns}, else: {:episode, ns}
    else
      error ->
        :persistent_term.put(__MODULE__, nil)
        {:error, error}
    end
  end

  defp build do
    fresh? =
      case File.stat(@binary) do
        {:ok, binary} -> binary.mtime >= File.stat!(@source).mtime
        {:error, _} -> false
      end

    if fresh? do
      :ok
    else
      File.mkdir_p!(Path.dirname(@binary))
      args = ~w(-O --edition 2021 -o #{@binary} #{@source})

      case System.cmd("rustc", args, stderr_to_stdout: true) do
        {_, 0} -> :ok
        {out, _} -> {:rustc, out}
      end
    end
  end

  defp open do
    port = Port.open({:spawn_executable, @binary}, [:binary, {:line, 256}])
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    Bench.Machine.own(os_pid)
    {:ok, port}
  end

  defp ask(port) do
    send(port, {self(), {:command, "\n"}})

    receive do
      {^port, {:data, {:eol, line}}} ->
        case Float.parse(line) do
          {ns, ""} -> ns
          _ -> {:probe, line}
        end
    after
      10_000 -> :timeout
    end
  end

  @doc """
  One sample: the fastest round trip of three batches, in ns (nil without a probe). A
  slow one is taken again up to twice, 100 ms apart, and the fastest kept: the BEAM's
  schedulers spin for a moment after a turn's work ends, sharing the probe's CPUs, while an
  episode of the host's lasts seconds.
  """
  def sample, do: sample(3)

  defp sample(tries) do
    case :persistent_term.get(__MODULE__, nil) do
      nil ->
        nil

      %{port: port, best: best} = state ->
        case ask(port) do
          ns when is_number(ns) and ns > @slow * best and tries > 1 ->
            Process.sleep(100)
            min(ns, sample(tries - 1) || ns)

          ns when is_number(ns) ->
            if ns < best, do: :persistent_term.put(__MODULE__, %{state | best: ns})
            ns

          _ ->
            nil
        end
    end
  end

  @doc "How many times the run's fastest sample makes an episode."
  def slow, do: @slow

  @doc "Whether a sample (`sample/0`) falls in an episode of the host's."
  def slow?(nil), do: false

  def slow?(ns) do
    %{best: best} = :persistent_term.get(__MODULE__)
    ns > @slow * best
  end

  @doc """
  Waits (up to `timeout` ms, sampling every 500 ms) for a calm sample; returns the last one.
  Once a wait has run out, later calls do not wait again until the host is calm: a long
  episode costs one wait, not one per turn.
  """
  def calm(timeout) do
    ns = sample()
    waited_out? = :persistent_term.get({__MODULE__, :waited_out}, false)

    cond do
      not slow?(ns) ->
        if waited_out?, do: :persistent_term.put({__MODULE__, :waited_out}, false)
        ns

      waited_out? ->
        ns

      true ->
        deadline = System.monotonic_time(:millisecond) + timeout
        ns = await_sample(&(not slow?(&1)), deadline, 500)
        if slow?(ns), do: :persistent_term.put({__MODULE__, :waited_out}, true)
        ns
    end
  end

  # Samples every `pause` ms until one satisfies `good?` or `deadline` passes; the last one.
  defp await_sample(good?, deadline, pause) do
    ns = sample()

    if good?.(ns) or System.monotonic_time(:millisecond) > deadline do
      ns
    else
      Process.sleep(pause)
      await_sample(good?, deadline, pause)
    end
  end
end
