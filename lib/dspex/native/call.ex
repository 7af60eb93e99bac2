defmodule DSPex.Native.Call do
  @moduledoc false
  # Queue a job and wait for its answer, with a timeout that cancels.
  #
  # The NIF returns a job handle at once; a worker later sends `{tag, answer}`. On timeout
  # the job is cancelled through its gate: either it will never answer (queued, or its
  # late answer is dropped), or the answer is already in our mailbox and is taken.
  # Either way no stray message is left behind.

  alias DSPex.Native.{Error, NIF}

  @doc false
  # `submit.(tag, dirty?)` queues the job through the normal NIF, or its dirty-scheduler twin
  # when the normal one found the arguments too big (`:dirty`).
  def run(submit, timeout) do
    tag = make_ref()

    case safe(fn -> with(:dirty <- submit.(tag, false), do: submit.(tag, true)) end) do
      {:ok, job} -> await(tag, job, timeout)
      {:ok, resource, job} -> with {:ok, _} <- await(tag, job, timeout), do: {:ok, resource}
      {:error, error} -> {:error, Error.from_native(error)}
    end
  end

  defp await(tag, job, timeout) do
    receive do
      {^tag, answer} -> unwrap(answer)
    after
      timeout ->
        case NIF.job_cancel(job) do
          :sent -> receive(do: ({^tag, answer} -> unwrap(answer)))
          _stopped -> {:error, Error.new(:timeout, "no answer within #{timeout} ms")}
        end
    end
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
