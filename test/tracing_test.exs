defmodule DSPex.Native.TracingTest do
  # Tracing is off by default and shows start-up, jobs and releases when switched on.
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
  IO.puts("DONE")
  """

  test "DSPEX_TRACE=debug shows start-up, each job and each release on stderr" do
    output = run_beam(@script, [{"DSPEX_TRACE", "debug"}])
    assert output =~ "DONE"
    assert output =~ "Python ready"
    assert output =~ ~r/job\{op="execute" session=\d+\}.*job done/
    assert output =~ "session released"
  end

  test "without DSPEX_TRACE the pool prints nothing" do
    output = run_beam(@script, [{"DSPEX_TRACE", ""}])
    assert String.trim(output) == "DONE"
  end
end
