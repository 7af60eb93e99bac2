defmodule DSPex.Native.Spin do
  @moduledoc false
  # Whether a caller polls its mailbox for a moment before it blocks waiting for an answer.
  #
  # A BEAM scheduler left with nothing to run spins for a while and then sleeps; an answer
  # that arrives after that pays for waking it, on a core that went idle. Measured on 2
  # vCPUs, one process calling Predict (DummyLM, ~240 µs of Python) back to back: from one
  # BEAM to the next the scheduler either stayed awake (240–250 µs a call) or slept
  # through each call (270–290 µs, and `+S 1` always slept); which one held for the whole
  # run. A caller that polls (yielding to any process that can run) keeps its scheduler
  # awake: 240–255 µs in every run.
  #
  # Polling costs a scheduler, so a caller polls only when it is likely to be short and
  # nothing else needs the scheduler: its last call of the same kind answered within
  # `@fast_ms`, and no more calls are in flight than there are schedulers. It polls for
  # `@budget_us` at most, then blocks as before. LM calls (tens of milliseconds) never
  # poll, nor do 64 processes calling at once.

  @fast_ms 1.0
  @budget_us 1_000
  @in_flight {__MODULE__, :in_flight}

  @doc false
  # Counts a call in flight; returns the counter (for `leave/1`) and until when (monotonic
  # µs) the caller polls, or nil.
  def enter(request) do
    counter = counter()
    in_flight = :atomics.add_get(counter, 1, 1)

    until =
      if in_flight <= :erlang.system_info(:schedulers_online) and
           Process.get({__MODULE__, kind(request)}, false) do
        System.monotonic_time(:microsecond) + @budget_us
      end

    {counter, until}
  end

  @doc false
  def leave(counter), do: :atomics.sub(counter, 1, 1)

  @doc false
  # Remembers whether a call of this kind answered fast (`timing` as the answer carries it,
  # `{queue_ms, python_ms}`, or nil when no answer came).
  def remember(request, {queue_ms, python_ms}),
    do: Process.put({__MODULE__, kind(request)}, queue_ms + python_ms <= @fast_ms)

  def remember(_request, nil), do: :ok

  @doc false
  def polling?(nil), do: false
  def polling?(until), do: System.monotonic_time(:microsecond) < until

  defp kind({:session_call, [_resource, op | _]}), do: {:session_call, op}
  defp kind({:global_call, [op | _]}), do: {:global_call, op}
  defp kind({nif, _args}), do: nif

  # One counter per BEAM, made by whichever call comes first (a race makes two, and each
  # call leaves the one it entered).
  defp counter do
    case :persistent_term.get(@in_flight, nil) do
      nil ->
        :persistent_term.put(@in_flight, :atomics.new(1, signed: true))
        :persistent_term.get(@in_flight)

      counter ->
        counter
    end
  end
end
