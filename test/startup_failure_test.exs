defmodule DSPex.Native.StartupFailureTest do
  # Bad settings fail the start; a broken Python fails every call. One interpreter per
  # BEAM: each case runs in a BEAM of its own, started here.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers

  @moduletag timeout: 120_000

  @script ~S"""
  started = Application.ensure_all_started(:dspex_native)
  IO.puts("START " <> inspect(started, limit: :infinity, printable_limit: :infinity))
  result = DSPex.Native.Session.open(name: "x")
  IO.puts("RESULT " <> inspect(result, limit: :infinity, printable_limit: :infinity))
  IO.puts("STATUS " <> inspect(DSPex.Native.status(), printable_limit: :infinity))
  """

  defp start_with(python, env \\ []) do
    # Not a hang: the child must answer well within run_beam's timeout.
    output = run_beam(@script, [{"DSPEX_PYTHON", python} | env])
    for label <- ~w(START RESULT STATUS), into: %{}, do: {label, beam_line(output, label)}
  end

  # The application did not start, naming the cause, and nothing runs.
  defp assert_refused(lines, reason, expected) do
    assert lines["START"] =~ "{:error, {:dspex_native,"
    assert lines["START"] =~ "%DSPex.Native.Error{reason: #{inspect(reason)}"
    assert lines["START"] =~ expected
    assert lines["RESULT"] =~ "reason: :not_started"
    assert lines["STATUS"] == ":idle"
  end

  defp build_venv, do: DSPex.Native.Environment.venv()

  defp base_python do
    cfg = File.read!(Path.join(build_venv(), "pyvenv.cfg"))
    [_, home] = Regex.run(~r/^home\s*=\s*(.+)$/m, cfg)
    Path.join(String.trim(home), "python3")
  end

  defp bare_venv(tmp) do
    venv = Path.join(tmp, "venv")
    {_, 0} = System.cmd(base_python(), ["-m", "venv", "--without-pip", venv])
    venv
  end

  @tag :tmp_dir
  test "a missing environment fails the start naming the path", %{tmp_dir: tmp} do
    missing = Path.join(tmp, "no-such-venv")
    assert_refused(start_with(missing), :not_started, "no Python environment at #{missing}")
  end

  @tag :tmp_dir
  test "an environment made by another Python fails the start naming both versions", %{
    tmp_dir: tmp
  } do
    File.mkdir_p!(Path.join(tmp, "bin"))
    File.ln_s!(base_python(), Path.join(tmp, "bin/python"))
    File.write!(Path.join(tmp, "pyvenv.cfg"), "home = /opt/python3.10/bin\nversion = 3.10.0\n")
    assert_refused(start_with(tmp), :not_started, "made by Python 3.10.0")
  end

  @tag :tmp_dir
  test "an environment without dspy fails the start saying so", %{tmp_dir: tmp} do
    assert_refused(start_with(bare_venv(tmp)), :not_started, "dspy is not installed")
  end

  test "a bad setting fails the start naming it" do
    assert_refused(
      start_with(build_venv(), [{"DSPEX_WORKERS", "lots"}]),
      :invalid_argument,
      ~s(config workers must be a positive integer, got \\"lots\\")
    )
  end

  @tag :tmp_dir
  test "a dspy that cannot be imported is :not_started on every call, with its error", %{
    tmp_dir: tmp
  } do
    venv = bare_venv(tmp)
    [site] = Path.wildcard(Path.join(venv, "lib/python*/site-packages"))
    File.mkdir_p!(Path.join(site, "dspy"))
    File.write!(Path.join(site, "dspy/__init__.py"), "raise ImportError('broken on purpose')\n")

    lines = start_with(venv)
    assert lines["START"] =~ "{:ok, "
    assert lines["RESULT"] =~ "reason: :not_started"
    assert lines["RESULT"] =~ "broken on purpose"
    assert lines["STATUS"] =~ "{:failed,"
    assert lines["STATUS"] =~ "broken on purpose"
  end
end
