defmodule DSPex.Native.SupervisionTest do
  # `start: false` and `{DSPex.Native, opts}` in a supervisor of the user's: in a BEAM of
  # its own, since this one's runtime started with the application.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers

  @moduletag timeout: 120_000

  @tag :tmp_dir
  test "the runtime runs in the user's supervisor with its options, stops and starts again",
       %{tmp_dir: tmp} do
    other = Path.join(tmp, "other-venv")
    {_, 0} = System.cmd(System.find_executable("python3"), ["-m", "venv", "--without-pip", other])

    script =
      "other = #{inspect(other)}\n" <>
        ~S"""
        alias DSPex.Native.Session
        show = fn label, term -> IO.puts(label <> " " <> inspect(term, printable_limit: :infinity)) end
        Application.put_env(:dspex_native, :start, false)
        {:ok, _} = Application.ensure_all_started(:dspex_native)
        show.("IDLE", {DSPex.Native.status(), Process.whereis(DSPex.Native.Remote)})
        show.("BAD", DSPex.Native.start_link(workers: 0))
        show.("UNKNOWN", DSPex.Native.start_link(wokers: 2))
        show.("SHAPE", DSPex.Native.start_link(%{workers: 2}))
        show.("STILL_IDLE", DSPex.Native.status())

        children = [{DSPex.Native, workers: 2, max_workers: 3}]
        {:ok, sup} = Supervisor.start_link(children, strategy: :one_for_one)
        :ok = DSPex.Native.await_ready()
        stats = DSPex.Native.stats()
        show.("POOL", {stats.workers, stats.max_workers})
        s = Session.open!(lm: {:dummy, [%{"answer" => "from my tree"}]})
        :ok = Session.create_program(s, "p", signature: "q -> answer")
        show.("EXECUTE", Session.execute(s, "p", %{q: "?"}))
        show.("AGAIN", DSPex.Native.start_link([]))

        :ok = Supervisor.stop(sup)
        show.("STOPPED", {DSPex.Native.status(), DSPex.Native.ping(1)})
        show.("OTHER", DSPex.Native.start_link(python: other))
        {:ok, sup} = Supervisor.start_link([DSPex.Native], strategy: :one_for_one)
        show.("RESTARTED", {DSPex.Native.status(), DSPex.Native.ping(2)})
        :ok = Supervisor.stop(sup)
        """

    output = run_beam(script, [])
    line = &beam_line(output, &1)

    assert line.("IDLE") == "{:idle, nil}"
    assert line.("BAD") =~ "reason: :invalid_argument"
    assert line.("BAD") =~ "config workers must be a positive integer, got 0"
    assert line.("UNKNOWN") =~ "unknown option :wokers"
    assert line.("SHAPE") =~ "options must be a keyword list"
    assert line.("STILL_IDLE") == ":idle"
    assert line.("POOL") == "{2, 3}"
    assert line.("EXECUTE") == ~s({:ok, %{"answer" => "from my tree"}})
    assert line.("AGAIN") =~ "{:error, {:already_started, #PID<"
    assert line.("STOPPED") =~ "{:idle, {:error, %DSPex.Native.Error{reason: :not_started"
    assert line.("OTHER") =~ "reason: :not_started"
    assert line.("OTHER") =~ "Python already runs from"
    assert line.("RESTARTED") == "{:ready, {:ok, 2}}"
  end
end
