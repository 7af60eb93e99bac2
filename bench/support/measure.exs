defmodule Bench.Measure do
  @moduledoc """
  How figures are taken: interleaved rounds, latency samples, throughput windows, and
  waits for an idle pool and a calm machine between them.
  """

  alias Bench.{Host, Machine, Stats}

  # Other processes using more than this many cores during a turn disturbed it.
  @busy 0.2
  # How long a turn waits for the host to leave an episode (they last 10 s to minutes).
  @host_wait 90
  # The keys of `rounds/3`'s result that describe the turns, not a contender.
  @meta [:others, :host, :redone]

  @doc """
  Runs `rounds` rounds of `contenders` (`[{name, fun}]`), each contender once per round,
  the order rotated by one every round so none always runs first or last. Before the
  rounds, each contender has one unmeasured turn (`warmup: false` skips it); after every
  turn, waits for dspex_native's pool to be idle (`settle/0`).

  A turn starts once the host is calm (`Bench.Host`, waiting up to #{@host_wait} s). A turn
  during which other processes used more than #{@busy} cores (`Bench.Machine.others_during/1`),
  or after which the host was in an episode, is run again, up to twice, once the machine
  and the host are calm (`redo: false` keeps every turn, for turns that start processes of
  their own). The figures stay those of the last try, disturbed or not.

  Returns `%{name => [figure per round], others: [cores per turn], host: [ns per turn],
  redone: count}`; `host` holds the cross-core round trip sampled after each turn.
  """
  def rounds(rounds, contenders, opts \\ []) do
    if Keyword.get(opts, :warmup, true), do: Enum.each(contenders, fn {_, fun} -> turn(fun) end)
    redo = if Keyword.get(opts, :redo, true), do: 2, else: 0
    k = length(contenders)

    turns =
      for r <- 0..(rounds - 1), {name, fun} <- rotate(contenders, rem(r, k)) do
        {figure, others, host, redone} = measured(fun, redo, 0)
        {name, figure, others, host, redone}
      end

    turns
    |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
    |> Map.put(:others, Enum.map(turns, &elem(&1, 2)))
    |> Map.put(:host, for({_, _, _, ns, _} <- turns, ns, do: ns))
    |> Map.put(:redone, Enum.sum(Enum.map(turns, &elem(&1, 4))))
  end

  defp measured(fun, redo, redone) do
    Host.calm(@host_wait * 1_000)
    {figure, others} = Machine.others_during(fun)
    settle()
    host = Host.sample()

    if (others > @busy or Host.slow?(host)) and redone < redo do
      Machine.calm(3_000)
      measured(fun, redo, redone + 1)
    else
      {figure, others, host, redone}
    end
  end

  defp turn(fun) do
    fun.()
    settle()
  end

  @doc "The keys of `rounds/3`'s result that describe the turns, not a contender."
  def meta, do: @meta

  @doc "`%{name => [x]}` from `%{name => [%{key => x}]}` (the `meta/0` keys kept)."
  def pick(rounds, key) do
    Map.new(rounds, fn
      {meta, x} when meta in @meta -> {meta, x}
      {name, xs} -> {name, Enum.map(xs, & &1[key])}
    end)
  end

  defp rotate(list, n), do: Enum.drop(list, n) ++ Enum.take(list, n)

  @doc "Latencies (µs) of `n` sequential calls of `fun`, after `warm` unmeasured ones."
  def latencies(fun, n, warm) do
    for _ <- 1..warm//1, do: fun.()

    for _ <- 1..n do
      t0 = System.monotonic_time(:nanosecond)
      fun.()
      (System.monotonic_time(:nanosecond) - t0) / 1_000
    end
  end

  @doc "One latency round: `%{p50, p99}` in µs."
  def latency(fun, n, warm) do
    xs = latencies(fun, n, warm)
    %{p50: Stats.median(xs), p99: Stats.percentile(xs, 0.99)}
  end

  @doc """
  Calls per second of `procs` processes each calling `fun.(i)` for `seconds`. Calls in
  flight at the deadline still finish and count: the rate divides by the real elapsed time.
  """
  def throughput(procs, seconds, fun) do
    t0 = System.monotonic_time(:microsecond)
    deadline = t0 + round(seconds * 1.0e6)

    count =
      1..procs
      |> Enum.map(fn i -> Task.async(fn -> loop(fun, i, deadline, 0) end) end)
      |> Task.await_many(:infinity)
      |> Enum.sum()

    count / ((System.monotonic_time(:microsecond) - t0) / 1.0e6)
  end

  defp loop(fun, i, deadline, n) do
    if System.monotonic_time(:microsecond) >= deadline do
      n
    else
      fun.(i)
      loop(fun, i, deadline, n + 1)
    end
  end

  @doc """
  Waits until dspex_native's pool has nothing queued (closed sessions freed, no job
  waiting): a turn must not pay for the previous one's leftovers.
  """
  def settle do
    wait(fn -> idle?(DSPex.Native.stats()) end, 30_000)
    :ok
  end

  defp idle?(stats), do: stats.releases_queued == 0 and stats.queued == 0

  @doc "Polls `fun` every millisecond until it is true (true) or `timeout` ms passed (false)."
  def wait(fun, timeout), do: wait_until(fun, System.monotonic_time(:millisecond) + timeout)

  defp wait_until(fun, deadline) do
    cond do
      fun.() -> true
      System.monotonic_time(:millisecond) > deadline -> false
      true -> Process.sleep(1) || wait_until(fun, deadline)
    end
  end
end
