defmodule DSPex.Native.Spin do
  @moduledoc false

  alias DSPex.Native.NIF
  # Whether a caller polls its mailbox for a moment before it blocks waiting for an answer.
  #
  # A BEAM scheduler left with nothing to run spins for a while and then sleeps; an answer
  # that arrives after that pays for waking it, on a core that went idle. Measured on 2
  # vCPUs, one process calling Predict (DummyLM, ~240 µs of Python) back to back: from one
  # BEAM to the next the scheduler either stayed awake (240–250 µs a call) or slept
  # through each call (270–290 µs, and `+S 1` always slept); which one held for the whole
  # run. A caller that polls (yielding to any process that can run) keeps its scheduler
  # awake: 234–255 µs in every run.
  #
  # Polling takes a scheduler, so a caller polls only while it costs nothing else: its last
  # call of the same kind answered within `@fast_ms` (LM calls never poll), fewer jobs are
  # queued or running than there are schedulers (64 callers keep dozens queued: polling
  # schedulers would take the cores their jobs need), no other process waits to run, and
  # for `@budget_us` at most; then it blocks as before.

  @fast_ms 1.0
  @budget_us 1_000

  @doc false
  # Until when (monotonic µs) a call like `request` may poll for its answer, or nil.
  def until(request) do
    # The pool's load (jobs queued or running, read from the NIF) is read only for a fast
    # kind of call: with 64 callers it stays high, as their jobs wait their turn.
    if Process.get({__MODULE__, kind(request)}, false) and idle_beam?() and
         NIF.pool_load() < :erlang.system_info(:schedulers_online) do
      System.monotonic_time(:microsecond) + @budget_us
    end
  end

  @doc false
  # Whether to poll once more (`until` from `until/1`).
  def polling?(nil), do: false
  def polling?(until), do: System.monotonic_time(:microsecond) < until and idle_beam?()

  @doc false
  # Remembers whether a call of this kind answered fast (`timing` as the answer carries it,
  # `{queue_ms, python_ms}`, or nil when no answer came).
  def remember(request, {queue_ms, python_ms}),
    do: Process.put({__MODULE__, kind(request)}, queue_ms + python_ms <= @fast_ms)

  def remember(_request, nil), do: :ok

  # No process waits in a run queue (a cheap, lock-free read of their lengths).
  defp idle_beam?, do: :erlang.statistics(:total_run_queue_lengths) == 0

  defp kind({:session_call, [_resource, op | _]}), do: {:session_call, op}
  defp kind({:global_call, [op | _]}), do: {:global_call, op}
  defp kind({nif, _args}), do: nif
end
