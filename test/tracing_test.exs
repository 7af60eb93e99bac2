defmodule DSPex.Native.TracingTest do
  # Tracing is off by default and, switched on, shows start-up, jobs and releases through
  # Logger, each line at its own level (not on raw stderr).
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers

  @moduletag timeout: 120_000

  @script ~S"""
  {:ok, _} = Application.ensure_all_started(:dspex_native)
  s = DSPex.Native.Session.open!(lm: {:dummy, [%{"answer" => "x"}]})
  :ok = DSPex.Native.Session.create_program(s, "p", signature: "q -> answer")
  {:ok, _} = DSPex.Native.Session.execute(s, "p", %{q: "?"})
  :ok = DSPex.Native.Session.close(s)
  # The release is counted after it is traced.
  released = fn -> DSPex.Native.NIF.pool_stats()["releases_done"] >= 1 end
  true = DSPex.Native.TestHelpers.eventually(released, 30_000)
  # Lines go through DSPex.Native.Events: once it has taken what waits, Logger has them.
  :sys.get_state(DSPex.Native.Events)
  Logger.flush()
  IO.puts("DONE")
  """

  # A Logger console line: time, level, then the message.
  defp logged(level, message), do: ~r/^\d\d:\d\d:\d\d\.\d{3} \[#{level}\] #{message}/m

  test "DSPEX_TRACE=debug shows start-up, each job and each release as Logger lines" do
    output = run_beam(@script, [{"DSPEX_TRACE", "debug"}])
    assert output =~ "DONE"

    assert output =~
             logged("info", "dspex-python startup: dspex_runtime::startup: starting Python")

    assert output =~
             logged("debug", ~S'dspex-worker-\d+ job\{op="execute" session=\d+\}: .*job done')

    assert output =~ logged("debug", "dspex-worker-\\d+ release: .*session released")
  end

  test "without DSPEX_TRACE only the runtime's info lines are logged" do
    output = run_beam(@script, [{"DSPEX_TRACE", ""}])
    lines = output |> String.split("\n", trim: true)
    assert "DONE" in lines
    assert output =~ logged("info", "dspex_native: Python [\\d.]+ ready in")

    for line <- lines, line != "DONE" do
      assert line =~ logged("info", "dspex_native: (Python|LM client stack)")
    end
  end
end
