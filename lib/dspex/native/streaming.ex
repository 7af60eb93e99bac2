defmodule DSPex.Native.Streaming do
  @moduledoc false
  # `Session.stream/4`: a lazy `Stream` over a streaming job.
  #
  # Enumeration starts a process that runs the job (so the consumer stays free to consume);
  # each piece the job sends reaches the consumer as a message, and is answered when the
  # consumer takes it: the job sends the next piece only then, so a slow consumer slows the
  # stream instead of filling its mailbox. Halting early (`Enum.take/2`), a crash of the
  # consumer or a timeout ends the job the way a timed-out `execute` does: the process is
  # killed, its job cancelled, and no message of the stream is left behind.

  alias DSPex.Native.{Error, Job, NIF}

  @doc false
  def stream(resource, session_id, args, timeout) do
    Stream.resource(
      fn -> start(resource, session_id, args, timeout) end,
      &next/1,
      &stop/1
    )
  end

  defp start(resource, session_id, args, timeout) do
    ref = make_ref()
    consumer = self()

    {pid, monitor} =
      spawn_monitor(fn ->
        job = {:session_call, [resource, "stream", args]}
        result = Job.run(job, timeout, [session: session_id], {consumer, ref})
        send(consumer, {ref, {:result, result}})
      end)

    %{ref: ref, pid: pid, monitor: monitor, done: false}
  end

  defp next(%{done: true} = state), do: {:halt, state}

  defp next(%{ref: ref, monitor: monitor} = state) do
    receive do
      {^ref, {:piece, id, event}} ->
        # Taken: the job may send the next piece.
        NIF.with_dirty(:callback_reply, [id, {:ok, nil}])
        {[item(event)], state}

      {^ref, {:result, {:ok, outputs}}} ->
        {[{:done, outputs}], %{state | done: true}}

      {^ref, {:result, {:error, error}}} ->
        raise error

      {:DOWN, ^monitor, :process, _pid, reason} ->
        raise Error.new(:internal_error, "the stream's job ended: #{inspect(reason)}")
    end
  end

  defp item(%{"kind" => "chunk", "field" => field, "text" => text}), do: {:chunk, field, text}
  defp item(%{"kind" => "status", "text" => text}), do: {:status, text}

  # Idempotent: a monitor of its own waits for the process (at once if it is gone already).
  defp stop(%{ref: ref, pid: pid, monitor: monitor}) do
    # Its job is cancelled when the process that waits for it is gone.
    Process.exit(pid, :kill)
    down = Process.monitor(pid)

    receive do
      {:DOWN, ^down, :process, _, _} -> :ok
    end

    Process.demonitor(monitor, [:flush])
    flush(ref)
  end

  # Whatever the stream's process sent before it died (signals between two processes keep
  # their order: all of it is here once :DOWN is).
  defp flush(ref) do
    receive do
      {^ref, {:piece, id, _}} ->
        NIF.with_dirty(:callback_reply, [id, {:error, "the stream was stopped"}])
        flush(ref)

      {^ref, _} ->
        flush(ref)
    after
      0 -> :ok
    end
  end
end
