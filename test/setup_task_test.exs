defmodule DSPex.Native.SetupTaskTest do
  # Real installs from PyPI into empty paths: uv's cache keeps them to a second or two.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO
  import DSPex.Native.InstallHelpers

  alias DSPex.Native.Environment
  alias Mix.Tasks.DspexNative.Setup

  @moduletag :tmp_dir
  @moduletag timeout: 300_000

  defp pinned(package) do
    [_, version] = Regex.run(~r/^#{package}==(\S+)$/m, File.read!(Environment.requirements()))
    version
  end

  defp version_in(venv, module) do
    code = "import #{module}; print(#{module}.__version__)"
    {out, 0} = System.cmd(Path.join(venv, "bin/python"), ["-c", code], stderr_to_stdout: true)
    String.trim(out)
  end

  test "an empty path gets the pinned venv, with progress; a second run does nothing", %{
    tmp_dir: tmp
  } do
    venv = Path.join(tmp, "venv")
    first = capture_io(fn -> Setup.run(["--path", venv]) end)
    assert first =~ "==> creating a venv at #{venv}"
    assert first =~ ~r/==> installing the pinned requirements with (uv|pip)/
    assert first =~ ~r/==> the Python environment at .* is ready \(\d+\.\d s\)/
    assert version_in(venv, "dspy") == pinned("dspy")

    second = capture_io(fn -> Setup.run(["--path", venv]) end)
    assert [line] = lines(second)
    assert line =~ "the Python environment at #{venv} is up to date"

    # New pins for the same Python: updated in place, not made again.
    stamp = Path.join(venv, ".dspex-requirements")
    File.write!(stamp, "0000000000000000 #{File.read!(stamp) |> String.split() |> List.last()}\n")
    third = capture_io(fn -> Setup.run(["--path", venv]) end)
    assert third =~ "==> updating the venv at #{venv}"
    refute third =~ "creating"
    assert [_] = lines(capture_io(fn -> Setup.run(["--path", venv]) end))
  end

  test "without uv, pip installs the requirements", %{tmp_dir: tmp} do
    requirements = Path.join(tmp, "requirements.txt")
    File.write!(requirements, "idna==#{pinned("idna")}\n")
    venv = Path.join(tmp, "venv")
    {:ok, python} = Environment.build_python()
    args = ["setup", venv, "--installer", "pip", "--requirements", requirements]
    assert {:ok, out} = Environment.script(python, args)
    assert out =~ "installing the pinned requirements with pip"
    assert version_in(venv, "idna") == pinned("idna")
  end

  test "a directory that is not a venv is never replaced", %{tmp_dir: tmp} do
    File.write!(Path.join(tmp, "keep.txt"), "mine")
    {:ok, python} = Environment.build_python()
    assert {:error, out} = Environment.script(python, ["setup", tmp, "--installer", "pip"])
    assert out =~ "exists and is not a venv"
    assert File.read!(Path.join(tmp, "keep.txt")) == "mine"
  end
end
