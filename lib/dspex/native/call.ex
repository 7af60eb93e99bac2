defmodule DSPex.Native.Call do
  @moduledoc false
  # Queue a job and wait for its answer, with a timeout that cancels.
  #
  # The NIF returns a job handle at once; a worker later sends `{tag, answer}`. On timeout
  # the job is cancelled through its gate: either it will never answer (queued, or its
  # late answer is dropped), or the answer is already in our mailbox and is taken.
  # Either way no stray message is left behind.

  require Logger
  alias DSPex.Native.{Error, NIF}

  @doc false
  # `submit.(tag, dirty?)` queues the job through the normal NIF, or its dirty-scheduler twin
  # when the normal one found the arguments too big (`:dirty`).
  #
  # `callbacks` maps keys to the Elixir functions Python may call while the job runs
  # (ReAct tools, metrics): each call runs in a process of its own, on the caller's behalf.
  def run(submit, timeout, callbacks \\ %{}, metadata \\ []) do
    tag = make_ref()
    deadline = if timeout == :infinity, do: :infinity, else: {now() + timeout, timeout}

    case safe(fn -> with(:dirty <- submit.(tag, false), do: submit.(tag, true)) end) do
      {:ok, job} ->
        await(tag, job, deadline, {callbacks, metadata})

      {:ok, resource, job} ->
        with {:ok, _} <- await(tag, job, deadline, {callbacks, metadata}), do: {:ok, resource}

      {:error, error} ->
        {:error, Error.from_native(error)}
    end
  end

  defp now, do: System.monotonic_time(:millisecond)

  # `callbacks` here is `{functions_by_key, logger_metadata}`.
  defp await(tag, job, deadline, callbacks) do
    left = if deadline == :infinity, do: :infinity, else: max(elem(deadline, 0) - now(), 0)

    receive do
      {^tag, {:callback, 0, notification}} ->
        notify(notification, elem(callbacks, 1))
        await(tag, job, deadline, callbacks)

      {^tag, {:callback, id, request}} ->
        call_back(id, request, elem(callbacks, 0))
        await(tag, job, deadline, callbacks)

      {^tag, answer} ->
        unwrap(answer)
    after
      left ->
        case NIF.job_cancel(job) do
          :sent -> receive(do: ({^tag, answer} -> unwrap(answer)))
          _stopped -> {:error, Error.new(:timeout, "no answer within #{elem(deadline, 1)} ms")}
        end
    end
  end

  # Python's output during the call: printed text to this process's group leader (iex shows
  # it, capture_io catches it), log records to Logger with the session in the metadata.
  defp notify(%{"kind" => "output", "stream" => "stderr", "text" => text}, _meta),
    do: IO.write(:standard_error, text)

  defp notify(%{"kind" => "output", "text" => text}, _meta), do: IO.write(text)

  defp notify(
         %{"kind" => "log", "level" => level, "logger" => logger, "message" => message},
         meta
       ) do
    Logger.log(logger_level(level), message, [python_logger: logger] ++ meta)
  end

  defp notify(_other, _meta), do: :ok

  defp logger_level(level) when level in ["CRITICAL", "FATAL"], do: :critical
  defp logger_level("ERROR"), do: :error
  defp logger_level(level) when level in ["WARNING", "WARN"], do: :warning
  defp logger_level("INFO"), do: :info
  defp logger_level(_), do: :debug

  # Runs the requested function in a process of its own (an exception or exit there is an
  # error for Python, never a crash here) and answers through the NIF.
  defp call_back(id, %{"key" => key, "args" => args}, callbacks) do
    fun = Map.get(callbacks, key)

    spawn(fn ->
      answer =
        try do
          if is_function(fun, 1),
            do: {:ok, fun.(args)},
            else: {:error, "no Elixir function registered as #{inspect(key)}"}
        rescue
          e -> {:error, Exception.format(:error, e, __STACKTRACE__)}
        catch
          kind, reason -> {:error, Exception.format(kind, reason, __STACKTRACE__)}
        end

      with :dirty <- NIF.callback_reply(id, answer), do: NIF.callback_reply_dirty(id, answer)
    end)
  end

  defp call_back(id, _request, _callbacks),
    do: NIF.callback_reply(id, {:error, "malformed callback request"})

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
