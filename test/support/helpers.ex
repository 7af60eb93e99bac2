defmodule DSPex.Native.TestHelpers do
  @moduledoc false

  @doc """
  Polls `fun` until it returns a truthy value or `timeout` ms pass; returns the last value.
  The deadline only bounds a failing test: a passing one returns as soon as `fun` does.
  """
  def eventually(fun, timeout \\ 10_000, interval \\ 10) do
    deadline = System.monotonic_time(:millisecond) + timeout
    poll(fun, deadline, interval)
  end

  defp poll(fun, deadline, interval) do
    value = fun.()

    cond do
      value -> value
      System.monotonic_time(:millisecond) >= deadline -> value
      true -> Process.sleep(interval) && poll(fun, deadline, interval)
    end
  end

  @doc """
  Waits until the runtime is quiet: garbage in every process collected (handles dropped
  but not yet collected are freed), no job queued or running, no release pending.
  """
  def settle(timeout \\ 10_000) do
    for pid <- Process.list(), do: :erlang.garbage_collect(pid)

    eventually(
      fn ->
        s = DSPex.Native.stats()
        s.queued == 0 and s.releases_queued == 0 and s.workers_idle == s.workers_alive
      end,
      timeout
    )
  end

  @doc """
  The Python side of session `id`: the number of programs it holds, or `nil` once Python
  has freed it (after a cycle collection). Needs the test hooks.
  """
  def python_session(id) do
    {:ok, programs} =
      test_eval("""
      import gc
      from dspex_bridge.session import LIVE_SESSIONS
      gc.collect()
      alive = [s for s in LIVE_SESSIONS if s.id == #{id}]
      result = len(alive[0].programs) if alive else None
      """)

    programs
  end

  @doc "A DummyLM spec that answers every prompt with `fields`."
  def dummy(fields) when is_map(fields), do: {:dummy, %{"" => fields}}

  @doc """
  Runs `script` in a fresh BEAM (one interpreter per BEAM: start-up tests need their own)
  with this build's code and `env`; returns its output. Fails the test if it does not exit
  within `timeout` ms.
  """
  def run_beam(script, env, timeout \\ 90_000) do
    ebin = Path.join(Mix.Project.build_path(), "lib/dspex_native/ebin")

    task =
      Task.async(fn ->
        System.cmd("elixir", ["-pa", ebin, "-e", script], env: env, stderr_to_stdout: true)
      end)

    {output, status} = Task.await(task, timeout)
    if status != 0, do: raise("the BEAM exited with #{status}:\n#{output}")
    output
  end

  @doc """
  Elixir source that starts the application in a BEAM of its own (see `run_beam/3`) with
  the test hooks and `settings`, and waits for Python. `import DSPex.Native.TestHelpers`
  and `alias DSPex.Native.Session` come with it.
  """
  def start_source(settings \\ "[]") do
    """
    Application.put_env(:dspex_native, :test_hooks, true)
    import DSPex.Native.TestHelpers
    alias DSPex.Native.Session
    for {key, value} <- #{settings}, do: Application.put_env(:dspex_native, key, value)
    {:ok, _} = Application.ensure_all_started(:dspex_native)
    :ok = DSPex.Native.await_ready(60_000)
    """
  end

  @doc "The rest of the line that starts with `label ` in a child BEAM's output."
  def beam_line(output, label) do
    case Regex.run(~r/^#{label} (.*)$/m, output) do
      [_, value] -> value
      nil -> raise ExUnit.AssertionError, message: "no #{label} line in:\n#{output}"
    end
  end

  @doc """
  Test hook (needs `test_hooks: true`, set in config/config.exs for :test): runs Python
  `source` on a worker and returns `{:ok, value_of_result}` or `{:error, %Error{}}`.
  """
  def test_eval(source, timeout \\ 15_000) do
    DSPex.Native.Job.run({:global_call, ["test_eval", source]}, timeout)
  end

  @doc """
  Python source for a job that spins in bytecode for `seconds` (interruptible only by an
  asynchronous exception) and records in `dspex_test_probe.events` how it ended.
  """
  def spin_source(tag, seconds) do
    probe_source(tag, """
    end = time.monotonic() + #{seconds}
    while time.monotonic() < end:
        pass
    """)
  end

  @doc """
  Python source for a job that waits until the file `flag` exists (in bytecode, so an
  asynchronous exception interrupts it), recording its events as `spin_source/2` does: a
  busy worker that the test, not the clock, sets free.
  """
  def held_source(tag, flag) do
    probe_source(tag, """
    while not os.path.exists(#{inspect(flag)}):
        time.sleep(0.005)
    """)
  end

  # A job whose `wait` (Python, at the try block's indentation) is wrapped in the events
  # `spin_source/2` and `held_source/2` record: started, then finished or the exception.
  defp probe_source(tag, wait) do
    """
    import os, sys, time, types
    probe = sys.modules.setdefault("dspex_test_probe", types.ModuleType("dspex_test_probe"))
    if not hasattr(probe, "events"):
        probe.events = []
    probe.events.append(("started", #{inspect(tag)}))
    try:
    #{String.replace(wait, ~r/^/m, "    ")}    probe.events.append(("finished", #{inspect(tag)}))
    except BaseException as exc:
        probe.events.append((type(exc).__name__, #{inspect(tag)}))
        raise
    result = "#{tag}"
    """
  end

  @doc """
  For a test whose deadline must fall while its job runs: on a busy machine a job may still
  be queued when a short deadline passes (it is then dropped, never started). Calls
  `attempt.(timeout)` with longer and longer timeouts until it returns something other
  than `nil` (which means "my job never started": try again), and returns that.
  """
  def while_running(attempt, timeouts \\ [300, 2_000, 10_000, 30_000]) do
    Enum.find_value(timeouts, attempt) ||
      raise ExUnit.AssertionError,
        message: "the job never started, even with #{List.last(timeouts)} ms"
  end

  @doc """
  Whether the job that records its events under `tag` started (`spin_source/2`,
  `held_source/2`, or Python that appends `("started", tag)` to `dspex_test_probe.events`).
  A job that started before its deadline recorded it at once; one still queued never will.
  """
  def started?(tag), do: eventually(fn -> "started" in spin_events(tag) end, 2_000)

  @doc "The `(event, tag)` pairs spin jobs recorded, for `tag`."
  def spin_events(tag) do
    {:ok, events} =
      test_eval("""
      import sys
      probe = sys.modules.get("dspex_test_probe")
      result = [e for (e, t) in getattr(probe, "events", []) if t == #{inspect(tag)}]
      """)

    events
  end

  @doc "Messages in the mailbox right now, without waiting."
  def mailbox do
    {:messages, messages} = Process.info(self(), :messages)
    messages
  end
end
