defmodule DSPex.Native.Streaming do
  @moduledoc false
  # `Session.stream/4`: a lazy `Stream` over a streaming job.
  #
  # Enumeration starts a process that runs the job (so the consumer stays free to consume);
  # each piece the job sends reaches the consumer as a message, and is answered when the
  # consumer takes it: the job sends the next piece only then, so a slow consumer slows the
  # stream instead of filling its mailbox. Halting early (`Enum.take/2`), an exception in
  # the consumer or a timeout ends the job the way a timed-out `execute` does: the process
  # is told to halt (killed if it has not ended within @halt_patience), its job cancelled,
  # and no message of the stream is left behind. Told rather than killed, so that it ends
  # its telemetry span (`result: :halted`).

  alias DSPex.Native.{Error, Job, NIF, Session}

  @halt_patience 5_000

  @doc false
  # `where` is `{:local, session}` or `{:remote, node, id, handle}` (a session
  # another node holds for this one: the job runs there, its pieces cross as messages). The
  # state keeps `where`, so the session's handle lives as long as the stream.
  def stream(where, args, timeout) do
    Stream.resource(fn -> start(where, args, timeout) end, &next/1, &stop/1)
  end

  defp start(where, args, timeout) do
    ref = make_ref()
    consumer = self()

    {pid, monitor} =
      case where do
        {:local, session} ->
          spawn_monitor(__MODULE__, :produce, [session, args, timeout, {consumer, ref}])

        {:remote, node, id, _handle} ->
          :erlang.spawn_monitor(node, DSPex.Native.Remote, :stream_here, [
            id,
            args,
            timeout,
            {consumer, ref}
          ])
      end

    %{ref: ref, pid: pid, monitor: monitor, done: false, where: where}
  end

  @doc false
  # The process that runs the streaming job; the pieces go to `to`, then the result.
  def produce(
        %Session{resource: resource, id: id, name: name},
        args,
        timeout,
        {consumer, ref} = to
      ) do
    job = {:session_call, [resource, "stream", args]}
    result = Job.run(job, timeout, [session: id, session_name: name], to)
    send(consumer, {ref, {:result, result}})
  end

  defp next(%{done: true} = state), do: {:halt, state}

  defp next(%{ref: ref, monitor: monitor} = state) do
    receive do
      {^ref, {:piece, id, event}} ->
        # Taken: the job may send the next piece.
        reply(state, id, {:ok, nil})
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
  defp stop(%{ref: ref, pid: pid, monitor: monitor} = state) do
    # The process cancels its job and ends (see `DSPex.Native.Job.run/4`).
    send(pid, {ref, :halt})
    down = Process.monitor(pid)

    receive do
      {:DOWN, ^down, :process, _, _} -> :ok
    after
      @halt_patience ->
        # Its job is cancelled when the process that waits for it is gone.
        Process.exit(pid, :kill)

        receive do
          {:DOWN, ^down, :process, _, _} -> :ok
        end
    end

    Process.demonitor(monitor, [:flush])
    flush(state, ref)
  end

  # The answer goes to the runtime of the node the job runs on.
  defp reply(%{pid: pid}, id, answer) when node(pid) == node(),
    do: NIF.with_dirty(:callback_reply, [id, answer])

  defp reply(%{pid: pid}, id, answer),
    do: :erpc.cast(node(pid), NIF, :with_dirty, [:callback_reply, [id, answer]])

  # Whatever the stream's process sent before it died (signals between two processes keep
  # their order: all of it is here once :DOWN is).
  defp flush(state, ref) do
    receive do
      {^ref, {:piece, id, _}} ->
        reply(state, id, {:error, "the stream was stopped"})
        flush(state, ref)

      {^ref, _} ->
        flush(state, ref)
    after
      0 -> :ok
    end
  end
end
