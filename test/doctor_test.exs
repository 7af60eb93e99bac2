defmodule DSPex.Native.DoctorTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO
  import DSPex.Native.InstallHelpers

  @moduletag timeout: 180_000

  test "a good environment: one ok line per check, and no exit" do
    out = capture_io(fn -> assert Mix.Tasks.DspexNative.Doctor.run([]) == :ok end)
    names = ~w(Erlang/OTP Elixir cargo build venv requirements dspy NIF NIF runtime)
    assert length(lines(out)) == length(names)

    for {line, name} <- Enum.zip(lines(out), names) do
      assert line =~ ~r/^ok   #{name}/
    end

    assert out =~ ~r/^ok   dspy +3\./m
    assert out =~ ~r/^ok   runtime +ready/m
  end

  @tag :tmp_dir
  test "broken environments: exit status 1, and the failing lines name the fix", %{tmp_dir: tmp} do
    missing = Path.join(tmp, "missing")
    no_dspy = empty_venv(Path.join(tmp, "no_dspy"))

    [{missing_out, missing_status}, {no_dspy_out, no_dspy_status}] =
      [missing, no_dspy]
      |> Enum.map(&Task.async(fn -> run_mix(["dspex_native.doctor"], [{"DSPEX_PYTHON", &1}]) end))
      |> Task.await_many(150_000)

    assert missing_status == 1, missing_out

    assert missing_out =~
             ~r/^FAIL venv +#{missing} does not exist \(from DSPEX_PYTHON\); fix: run `mix dspex_native.setup`/m

    assert missing_out =~ ~r/^FAIL runtime +.*no Python environment at #{missing}/m
    assert missing_out =~ ~r/^ok   NIF +loaded/m

    assert no_dspy_status == 1, no_dspy_out
    assert no_dspy_out =~ ~r/^ok   venv +#{no_dspy} \(Python 3/m

    assert no_dspy_out =~
             ~r/^FAIL dspy +not installed in the venv; fix: run `mix dspex_native.setup`/m

    assert no_dspy_out =~ ~r/^FAIL runtime +.*dspy is not installed/m
  end
end
