defmodule DSPex.Native.Job do
  @moduledoc false
  # Queue a job and wait for its answer, with a deadline that cancels.
  #
  # The NIF returns a job handle at once; a worker later sends the answer,
  # `{tag, {:ok, value} | {:error, error}, queue_ms, python_ms}` (how long the job waited
  # for a worker, and ran on it: float milliseconds, the protocol's one time unit), and
  # while the job runs, the messages `dspex_runtime::callbacks::Outbound` declares:
  # `{tag, {:output, payload}}` (Python's prints, log records and LM call reports) and
  # `{tag, {:callback, id, request, timeout_ms}}` (run an Elixir tool or metric). All of them
  # pass the job's gate. The deadline is computed once and checked before every receive, so
  # no stream of messages can hold the call past it. On the deadline the job is cancelled
  # through its gate: either it will never send anything again (queued, or running and
  # interrupted), or its answer is already in our mailbox and is taken. Either way, once
  # the call returns, every `{tag, ...}` message has been taken and no more can come: the
  # tag is an alias (for the output sink's reports), deactivated before the final flush.
  #
  # A short call polls its mailbox for a moment before it blocks, so that its scheduler is
  # awake when the answer comes (see `DSPex.Native.Spin`).
  #
  # Every call is a `[:dspex_native, :call, ...]` span when `:telemetry` is loaded (see
  # `DSPex.Native.Telemetry`); without it, a call costs one `persistent_term` read more.

  alias DSPex.Native.{Callbacks, Error, NIF, Output, Spin, Telemetry}

  defstruct [
    :tag,
    :job,
    :deadline,
    :timeout,
    :output,
    :request,
    :metadata,
    keeper: nil,
    stream: nil,
    halt: nil,
    # The job's gate said its answer was delivered when we cancelled it.
    sent: false,
    # Until when (monotonic µs) the caller polls for the answer before blocking (see
    # `DSPex.Native.Spin`), or nil.
    poll_until: nil
  ]

  @doc false
  # The protocol's one unit for times that cross: timeouts as integers, durations as floats.
  def time_unit, do: :millisecond

  @doc false
  # `{nif, args}` queues the job through NIF `nif` (args, then the tag), or its dirty twin
  # when the normal one found the arguments too big (see `NIF.with_dirty/2`). `metadata`
  # (`session:` id, `session_name:`) goes with the log records Python emits during the job
  # and with its telemetry.
  #
  # `stream` (`{pid, ref}`) receives the pieces a streaming job sends, as
  # `{ref, {:piece, id, event}}`; whoever takes one answers `NIF.callback_reply(id, ...)`,
  # and the job sends the next only then. `{ref, :halt}` sent to the waiting process stops
  # the job: the call then returns `:halted`.
  def run(request, timeout, metadata \\ [], stream \\ nil) do
    if Telemetry.enabled?() do
      Telemetry.call(request, metadata, fn -> run_timed(request, timeout, metadata, stream) end)
    else
      elem(run_timed(request, timeout, metadata, stream), 0)
    end
  end

  # `{result, {queue_ms, python_ms} | nil}`: nil when no answer came (timeout, refused).
  defp run_timed({nif, args} = request, timeout, metadata, stream) do
    tag = :erlang.alias()
    deadline = if timeout == :infinity, do: :infinity, else: now() + timeout
    poll_until = if stream, do: nil, else: Spin.until(request)

    call = %__MODULE__{
      tag: tag,
      deadline: deadline,
      timeout: timeout,
      stream: stream,
      # Nobody sends `{tag, :halt}`: a call that is not a stream cannot be halted.
      halt: if(stream, do: elem(stream, 1), else: tag),
      request: request,
      metadata: metadata,
      poll_until: poll_until
    }

    try do
      case safe(fn -> NIF.with_dirty(nif, args ++ [tag]) end) do
        {:ok, job} ->
          await(%{call | job: job, output: Output.new(tag, metadata)})

        {:ok, resource, job} ->
          case await(%{call | job: job, output: Output.new(tag, metadata)}) do
            {{:ok, _}, timing} -> {{:ok, resource}, timing}
            other -> other
          end

        {:error, error} ->
          {{:error, Error.from_native(error)}, nil}
      end
    else
      {_result, timing} = timed ->
        if !stream, do: Spin.remember(request, timing)
        timed
    after
      :erlang.unalias(tag)
      flush(tag)
    end
  end

  defp now, do: System.monotonic_time(:millisecond)

  defp left(:infinity), do: :infinity
  defp left(deadline), do: max(deadline - now(), 0)

  defp await(%{tag: tag, halt: halt} = call) do
    case left(call.deadline) do
      0 ->
        give_up(call, :timeout)

      left ->
        # Decided once: the `after` below must not read the clock again.
        polling = Spin.polling?(call.poll_until)

        receive do
          {^tag, {:output, %{"kind" => "lm"} = report}} ->
            Telemetry.lm_call(report, call.request, call.metadata)
            await(call)

          {^tag, {:output, payload}} ->
            await(%{call | output: Output.handle(payload, call.output)})

          {^tag, {:callback, id, request, timeout_ms}} ->
            await(call_back(call, id, request, timeout_ms))

          {^tag, answer, queue_ms, python_ms} ->
            finish(call, unwrap(answer), {queue_ms, python_ms})

          {^halt, :halt} ->
            give_up(call, :halted)

          {^tag, report} ->
            await(%{call | output: Output.report(report, call.output)})
        after
          if(polling, do: 0, else: left) ->
            if polling do
              :erlang.yield()
              await(call)
            else
              give_up(call, :timeout)
            end
        end
    end
  end

  # Cancels the job: on its deadline (`:timeout`) or when a stream's consumer stops it.
  defp give_up(%{sent: true} = call, _why) do
    # Cannot happen (the gate delivered the answer); a guard against a hang all the same.
    error = Error.new(:internal_error, "a delivered answer was lost")
    finish(call, {:error, error}, nil)
  end

  defp give_up(call, why) do
    case NIF.job_cancel(call.job) do
      :sent ->
        # Delivered under the gate before our cancel: the answer is in the mailbox, behind
        # whatever the job sent first (its output), which is handled as in any call.
        await(%{call | sent: true, deadline: now() + 5_000, halt: make_ref(), poll_until: nil})

      _stopped when why == :halted ->
        finish(call, :halted, nil)

      _stopped ->
        error = Error.new(:timeout, "no answer within #{call.timeout} ms")
        finish(call, {:error, error}, nil)
    end
  end

  defp finish(call, result, timing) do
    Callbacks.stop(call.keeper)
    Output.finish(call.output)
    {result, timing}
  end

  # Every message of this call still in the mailbox (after the job's gate is closed and
  # the alias deactivated, no more can come).
  defp flush(tag) do
    receive do
      {^tag, _} -> flush(tag)
      {^tag, _, _, _} -> flush(tag)
    after
      0 -> :ok
    end
  end

  defp call_back(call, id, %{"key" => fun, "args" => args}, timeout_ms) do
    %{call | keeper: Callbacks.run(call.keeper, id, fun, args, timeout_ms)}
  end

  defp call_back(%{stream: {pid, ref}} = call, id, %{"stream" => event}, _timeout_ms) do
    send(pid, {ref, {:piece, id, event}})
    call
  end

  defp call_back(call, id, _request, _timeout_ms) do
    NIF.callback_reply(id, {:error, "malformed callback request"})
    call
  end

  defp unwrap({:ok, value}), do: {:ok, value}
  defp unwrap({:error, error}), do: {:error, Error.from_native(error)}

  @doc false
  # Calls a NIF, turning a library that failed to load into :not_started.
  def safe(fun) do
    fun.()
  rescue
    # `in ErlangError` also catches what Elixir turns into other exceptions (a NIF's badarg
    # into ArgumentError, which has no `original`): those are raised again as they are.
    e in ErlangError ->
      case e do
        %ErlangError{original: :not_loaded} ->
          {:error, not_loaded()}

        # rustler turns a panic into this exception; the caller gets an error instead.
        %ErlangError{original: :nif_panicked} ->
          {:error, {:internal_error, "a panic in the NIF was caught", nil, nil}}

        _ ->
          reraise(e, __STACKTRACE__)
      end
  end

  defp not_loaded do
    {:not_started, NIF.load_error() || "the dspex_native NIF is not loaded", nil, nil}
  end
end
