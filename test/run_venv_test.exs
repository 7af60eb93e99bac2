defmodule DSPex.Native.RunVenvTest do
  # Which venv runs is a run-time setting: switching it never rebuilds or replaces the NIF.
  use ExUnit.Case, async: true

  import DSPex.Native.InstallHelpers
  import DSPex.Native.TestHelpers, only: [beam_line: 2]

  @moduletag timeout: 180_000

  @tag :tmp_dir
  test "DSPEX_PYTHON at boot runs another venv, and the NIF is left as it was", %{tmp_dir: tmp} do
    other = linked_venv(Path.join(tmp, "other"))
    nif = File.stat!(DSPex.Native.Environment.nif_path(), time: :posix)

    script = ~S"""
    :ok = DSPex.Native.await_ready(60_000)
    {:ok, prefix} = DSPex.Native.TestHelpers.test_eval("import sys\nresult = sys.prefix")
    IO.puts("PREFIX " <> prefix)
    """

    {out, status} = run_mix(["run", "-e", script], [{"DSPEX_PYTHON", other}])
    assert status == 0, out
    assert beam_line(out, "PREFIX") == other
    refute out =~ "building the NIF"
    after_run = File.stat!(DSPex.Native.Environment.nif_path(), time: :posix)
    assert {after_run.mtime, after_run.inode} == {nif.mtime, nif.inode}
  end
end
