defmodule DSPex.Native.Job do
  @moduledoc false
  # Queue a job and wait for its answer, with a deadline that cancels.
  #
  # The NIF returns a job handle at once; a worker later sends `{tag, answer}`, and while
  # the job runs, the messages `dspex_runtime::callbacks::Outbound` declares:
  # `{tag, {:output, payload}}` (Python's prints and log records) and
  # `{tag, {:callback, id, request, timeout_ms}}` (run an Elixir tool or metric). All of them
  # pass the job's gate. The deadline is computed once and checked before every receive, so
  # no stream of messages can hold the call past it. On the deadline the job is cancelled
  # through its gate: either it will never send anything again (queued, or running and
  # interrupted), or its answer is already in our mailbox and is taken. Either way, once
  # the call returns, every `{tag, _}` message has been taken and no more can come: the tag
  # is an alias (for the output sink's reports), deactivated before the final flush.

  alias DSPex.Native.{Callbacks, Error, NIF, Output}

  defstruct [:tag, :job, :deadline, :timeout, :output, keeper: nil, stream: nil]

  @doc false
  # `{nif, args}` queues the job through NIF `nif` (args, then the tag), or its dirty twin
  # when the normal one found the arguments too big (see `NIF.with_dirty/2`). `metadata`
  # goes with the log records Python emits during the job.
  #
  # `stream` (`{pid, ref}`) receives the pieces a streaming job sends, as
  # `{ref, {:piece, id, event}}`; whoever takes one answers `NIF.callback_reply(id, ...)`,
  # and the job sends the next only then.
  def run({nif, args}, timeout, metadata \\ [], stream \\ nil) do
    tag = :erlang.alias()
    deadline = if timeout == :infinity, do: :infinity, else: now() + timeout
    call = %__MODULE__{tag: tag, deadline: deadline, timeout: timeout, stream: stream}

    try do
      case safe(fn -> NIF.with_dirty(nif, args ++ [tag]) end) do
        {:ok, job} ->
          await(%{call | job: job, output: Output.new(tag, metadata)})

        {:ok, resource, job} ->
          with {:ok, _} <- await(%{call | job: job, output: Output.new(tag, metadata)}),
               do: {:ok, resource}

        {:error, error} ->
          {:error, Error.from_native(error)}
      end
    after
      :erlang.unalias(tag)
      flush(tag)
    end
  end

  defp now, do: System.monotonic_time(:millisecond)

  defp left(:infinity), do: :infinity
  defp left(deadline), do: max(deadline - now(), 0)

  defp await(%{tag: tag} = call) do
    case left(call.deadline) do
      0 ->
        give_up(call)

      left ->
        receive do
          {^tag, {:output, payload}} ->
            await(%{call | output: Output.handle(payload, call.output)})

          {^tag, {:callback, id, request, timeout_ms}} ->
            await(call_back(call, id, request, timeout_ms))

          {^tag, {:ok, _} = answer} ->
            finish(call, unwrap(answer))

          {^tag, {:error, _} = answer} ->
            finish(call, unwrap(answer))

          {^tag, report} ->
            await(%{call | output: Output.report(report, call.output)})
        after
          left -> give_up(call)
        end
    end
  end

  defp give_up(%{tag: tag} = call) do
    case NIF.job_cancel(call.job) do
      :sent ->
        # Delivered under the gate before our cancel: it is in the mailbox, maybe behind
        # other messages of the job, which the final flush takes.
        receive do
          {^tag, {:ok, _} = answer} -> finish(call, unwrap(answer))
          {^tag, {:error, _} = answer} -> finish(call, unwrap(answer))
        after
          # Cannot happen (the gate delivered it); a guard against a hang all the same.
          5_000 ->
            finish(call, {:error, Error.new(:internal_error, "a delivered answer was lost")})
        end

      _stopped ->
        finish(call, {:error, Error.new(:timeout, "no answer within #{call.timeout} ms")})
    end
  end

  defp finish(call, result) do
    Callbacks.stop(call.keeper)
    Output.finish(call.output)
    result
  end

  # Every message of this call still in the mailbox (after the job's gate is closed and
  # the alias deactivated, no more can come).
  defp flush(tag) do
    receive do
      {^tag, _} -> flush(tag)
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
    e in ErlangError ->
      case e.original do
        :not_loaded -> {:error, not_loaded()}
        # rustler turns a panic into this exception; the caller gets an error instead.
        :nif_panicked -> {:error, {:internal_error, "a panic in the NIF was caught", nil, nil}}
        _ -> reraise(e, __STACKTRACE__)
      end
  end

  defp not_loaded do
    {:not_started, NIF.load_error() || "the dspex_native NIF is not loaded", nil, nil}
  end
end
