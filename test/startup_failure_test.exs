defmodule DSPex.Native.StartupFailureTest do
  # One interpreter per BEAM: each failure mode runs in a BEAM of its own, started here.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers

  @moduletag timeout: 120_000

  @script ~S"""
  {:ok, _} = Application.ensure_all_started(:dspex_native)
  result = DSPex.Native.Session.open(name: "x")
  IO.puts("RESULT " <> inspect(result, limit: :infinity, printable_limit: :infinity))
  IO.puts("STATUS " <> inspect(DSPex.Native.status(), printable_limit: :infinity))
  """

  defp start_with(python, env \\ []) do
    # Not a hang: the child must answer well within run_beam's timeout.
    output = run_beam(@script, [{"DSPEX_PYTHON", python} | env])
    [_, result] = Regex.run(~r/^RESULT (.*)$/m, output)
    [_, status_line] = Regex.run(~r/^STATUS (.*)$/m, output)
    {result, status_line}
  end

  defp assert_not_started({result, status}, expected) do
    assert result =~ "%DSPex.Native.Error{reason: :not_started"
    assert result =~ expected
    assert status =~ "{:failed,"
    assert status =~ expected
  end

  defp build_venv, do: DSPex.Native.Environment.venv()

  defp base_python do
    cfg = File.read!(Path.join(build_venv(), "pyvenv.cfg"))
    [_, home] = Regex.run(~r/^home\s*=\s*(.+)$/m, cfg)
    Path.join(String.trim(home), "python3")
  end

  @tag :tmp_dir
  test "a missing environment is :not_started naming the path", %{tmp_dir: tmp} do
    missing = Path.join(tmp, "no-such-venv")
    assert_not_started(start_with(missing), "no Python environment at #{missing}")
  end

  @tag :tmp_dir
  test "an environment made by another Python is :not_started naming both versions", %{
    tmp_dir: tmp
  } do
    File.mkdir_p!(Path.join(tmp, "bin"))
    File.ln_s!(base_python(), Path.join(tmp, "bin/python"))
    File.write!(Path.join(tmp, "pyvenv.cfg"), "home = /opt/python3.10/bin\nversion = 3.10.0\n")
    assert_not_started(start_with(tmp), "made by Python 3.10.0")
  end

  @tag :tmp_dir
  test "an environment without dspy is :not_started saying so", %{tmp_dir: tmp} do
    venv = Path.join(tmp, "venv")
    {_, 0} = System.cmd(base_python(), ["-m", "venv", "--without-pip", venv])
    assert_not_started(start_with(venv), "dspy is not installed")
  end

  test "a bad setting is :not_started naming it" do
    assert_not_started(
      start_with(build_venv(), [{"DSPEX_WORKERS", "lots"}]),
      ~s(config workers must be a positive integer, got \\"lots\\")
    )
  end
end
