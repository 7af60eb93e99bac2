defmodule DSPex.Native.Callbacks do
  @moduledoc false
  # The Elixir functions Python calls back during a job (ReAct tools, compile metrics),
  # each run in a process tied to the job.
  #
  # A keeper process, started at the job's first call back, monitors the caller and runs
  # each function in a process of its own, so an exception or exit there is an error for
  # Python, never a crash of the caller (and a trapping caller gets no exit messages). The
  # keeper kills a function's process when Python stops waiting for it (the call's own
  # timeout), when the job ends (answered, timed out or cancelled: the caller stops the
  # keeper) and when the caller dies: a function that never returns never outlives its job.

  alias DSPex.Native.NIF

  @longest_timer 4_294_967_295

  @doc false
  # Runs `fun.(args)` for call back `id`, answering through the NIF; the keeper (started
  # when nil) is returned for the next call.
  @spec run(pid() | nil, pos_integer(), term(), term(), non_neg_integer()) :: pid()
  def run(keeper, id, fun, args, timeout_ms) do
    keeper = keeper || start()
    send(keeper, {:run, id, fun, args, timeout_ms})
    keeper
  end

  @doc false
  # The job is over: every function still running is killed. Never waits.
  @spec stop(pid() | nil) :: :ok
  def stop(nil), do: :ok

  def stop(keeper) do
    send(keeper, :stop)
    :ok
  end

  defp start do
    caller = self()

    spawn(fn ->
      Process.monitor(caller)
      keep(%{})
    end)
  end

  # `running` maps the monitor of each function's process to its pid.
  defp keep(running) do
    receive do
      {:run, id, fun, args, timeout_ms} ->
        {pid, ref} = spawn_monitor(fn -> answer(id, fun, args) end)
        # Longer than a timer can wait (49 days) is as good as never.
        if timeout_ms <= @longest_timer,
          do: Process.send_after(self(), {:expired, ref}, timeout_ms)

        keep(Map.put(running, ref, pid))

      {:expired, ref} ->
        # Python gave up on it; its answer would go nowhere.
        with pid when is_pid(pid) <- running[ref], do: Process.exit(pid, :kill)
        keep(running)

      {:DOWN, ref, :process, _pid, _reason} when is_map_key(running, ref) ->
        keep(Map.delete(running, ref))

      # The caller died.
      {:DOWN, _ref, :process, _caller, _reason} ->
        kill(running)

      # The job is over.
      :stop ->
        kill(running)
    end
  end

  defp kill(running) do
    for {_ref, pid} <- running, do: Process.exit(pid, :kill)
    :ok
  end

  defp answer(id, fun, args) do
    answer =
      try do
        if is_function(fun, 1),
          do: {:ok, fun.(args)},
          else: {:error, "no Elixir function was given for this call"}
      rescue
        e -> {:error, Exception.format(:error, e, __STACKTRACE__)}
      catch
        kind, reason -> {:error, Exception.format(kind, reason, __STACKTRACE__)}
      end

    NIF.with_dirty(:callback_reply, [id, answer])
  end
end
