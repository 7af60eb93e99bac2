defmodule DSPex.Native.ApplicationTest do
  # Overload and clean stops, each in a BEAM of its own (they need a small pool, or stop
  # the application).
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers

  @moduletag timeout: 120_000

  @prelude ~S"""
  Application.put_env(:dspex_native, :test_hooks, true)
  import DSPex.Native.TestHelpers
  alias DSPex.Native.Session

  # Starts the application with these settings and waits for Python.
  start = fn settings ->
    for {key, value} <- settings, do: Application.put_env(:dspex_native, key, value)
    {:ok, _} = Application.ensure_all_started(:dspex_native)
    :ok = DSPex.Native.await_ready()
  end

  # True once every worker is busy with `held` (a task) and nothing waits (read without
  # Python); otherwise raises with what it saw.
  busy? = fn held ->
    eventually(fn ->
      s = DSPex.Native.NIF.pool_stats()
      s["workers_idle"] == 0 and s["queued"] == 0
    end, 10_000) ||
      raise "never busy: #{inspect(DSPex.Native.NIF.pool_stats())}, held job: #{inspect(Task.yield(held, 0))}"
  end
  """

  defp line(output, label) do
    case Regex.run(~r/^#{label} (.*)$/m, output) do
      [_, value] -> value
      nil -> flunk("no #{label} line in:\n#{output}")
    end
  end

  # Sets `flag`: the file whose creation sets a held job (held_source/2) free.
  defp flag(tmp), do: "flag = #{inspect(Path.join(tmp, "go"))}\n"

  @tag :tmp_dir
  test "past the queue bound calls are :overloaded at once; releases still happen", %{
    tmp_dir: tmp
  } do
    output =
      run_beam(
        @prelude <>
          flag(tmp) <>
          ~S"""
          start.(workers: 1, max_workers: 1, queue_size: 3)
          s = Session.open!(name: "dropped while full")
          :ok = Session.create_program(s, "p", signature: "q -> a")
          IO.puts("BEFORE #{DSPex.Native.stats().sessions}")
          busy = Task.async(fn -> test_eval(held_source("busy", flag), 60_000) end)
          true = busy?.(busy)
          queued = for i <- 1..3, do: Task.async(fn -> DSPex.Native.ping(i, 60_000) end)
          true = eventually(fn -> DSPex.Native.NIF.pool_stats()["queued"] == 3 end, 10_000)
          IO.puts("OVER #{inspect(DSPex.Native.ping(:over, 1_000))}")
          # The queue is full; closing must still free the session's Python objects.
          :ok = Session.close(s)
          File.write!(flag, "")
          IO.puts("BUSY #{inspect(Task.await(busy, 20_000))}")
          IO.puts("QUEUED #{inspect(Task.await_many(queued, 20_000))}")
          IO.puts("AFTER #{DSPex.Native.stats().sessions}")
          """,
        []
      )

    assert line(output, "BEFORE") == "1"
    assert line(output, "OVER") =~ "reason: :overloaded"
    assert line(output, "OVER") =~ "job queue is full"
    assert line(output, "BUSY") == ~s({:ok, "busy"})
    assert line(output, "QUEUED") == "[ok: 1, ok: 2, ok: 3]"
    assert line(output, "AFTER") == "0"
  end

  @tag :tmp_dir
  test "a queued job whose caller timed out or died never runs", %{tmp_dir: tmp} do
    output =
      run_beam(
        @prelude <>
          flag(tmp) <>
          ~S"""
          start.(workers: 1, max_workers: 1)
          # The only worker is busy until the flag is set, however slow this machine is.
          busy = Task.async(fn -> test_eval(held_source("busy", flag), 60_000) end)
          true = busy?.(busy)
          # Queued behind the busy worker: one caller times out, one dies.
          IO.puts("TIMED_OUT #{inspect(test_eval(spin_source("timed_out", 0), 100))}")
          dying = spawn(fn -> test_eval(spin_source("died", 0), :infinity) end)
          true = eventually(fn -> DSPex.Native.NIF.pool_stats()["queued"] == 2 end, 10_000)
          ref = Process.monitor(dying)
          Process.exit(dying, :kill)
          receive do: ({:DOWN, ^ref, _, _, _} -> :ok)
          # The dead caller's job is cancelled as its handle is freed with the process.
          true = eventually(fn -> DSPex.Native.NIF.pool_stats()["jobs_cancelled"] == 2 end, 10_000)
          File.write!(flag, "")
          IO.puts("BUSY #{inspect(Task.await(busy, 20_000))}")
          IO.puts("RAN #{inspect(timed_out: spin_events("timed_out"), died: spin_events("died"))}")
          """,
        []
      )

    assert line(output, "TIMED_OUT") =~ "reason: :timeout"
    assert line(output, "BUSY") == ~s({:ok, "busy"})
    assert line(output, "RAN") == "[timed_out: [], died: []]"
  end

  @tag :tmp_dir
  test "Application.stop returns at once, running jobs still answer, start serves again", %{
    tmp_dir: tmp
  } do
    output =
      run_beam(
        @prelude <>
          flag(tmp) <>
          ~S"""
          start.([])
          busy = Task.async(fn -> test_eval(held_source("busy", flag), 60_000) end)
          true = eventually(fn -> spin_events("busy") == ["started"] end, 10_000)
          :ok = Application.stop(:dspex_native)
          IO.puts("STATUS_STOPPED #{inspect(DSPex.Native.status())}")
          IO.puts("AFTER_STOP #{inspect(DSPex.Native.ping(:x))}")
          File.write!(flag, "")
          IO.puts("BUSY #{inspect(Task.await(busy, 20_000))}")
          {:ok, _} = Application.ensure_all_started(:dspex_native)
          IO.puts("STATUS_RESTARTED #{inspect(DSPex.Native.status())}")
          IO.puts("RESTARTED #{inspect(DSPex.Native.ping(:x))}")
          """,
        []
      )

    # Stopped, it says so (calls would be refused), and ready again once started.
    assert line(output, "STATUS_STOPPED") == ":idle"
    assert line(output, "STATUS_RESTARTED") == ":ready"
    assert line(output, "AFTER_STOP") =~ "reason: :not_started"
    assert line(output, "AFTER_STOP") =~ "application is stopped"
    assert line(output, "BUSY") == ~s({:ok, "busy"})
    assert line(output, "RESTARTED") == "{:ok, :x}"
  end

  test "System.halt with Python jobs running ends the BEAM (no hang)" do
    output =
      run_beam(
        @prelude <>
          ~S"""
          start.([])
          for n <- 1..4, do: spawn(fn -> test_eval(spin_source("halt#{n}", 60), :infinity) end)
          started = fn -> Enum.all?(1..4, &(spin_events("halt#{&1}") == ["started"])) end
          true = eventually(started, 10_000)
          IO.puts("HALTING")
          System.halt(0)
          """,
        [],
        # A hang guard, not a timing assertion: the jobs would spin for 60 s.
        30_000
      )

    assert output =~ "HALTING"
  end
end
