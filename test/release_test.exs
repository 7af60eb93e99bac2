defmodule DSPex.Native.ReleaseTest do
  # An app that depends on dspex_native, released, moved to another directory, and run
  # with the venv chosen at boot: by its config/runtime.exs, then by DSPEX_PYTHON.
  use ExUnit.Case, async: true

  import DSPex.Native.InstallHelpers
  import DSPex.Native.TestHelpers, only: [beam_line: 2]

  @moduletag timeout: 300_000

  @program ~S"""
  {:ok, _} = Application.ensure_all_started(:dspex_native)
  :ok = DSPex.Native.await_ready(60_000)
  alias DSPex.Native.Session
  s = Session.open!(lm: {:dummy, %{"" => %{"answer" => "from the moved release"}}})
  :ok = Session.create_program(s, "p", signature: "question -> answer")
  IO.puts("SETTING " <> inspect(DSPex.Native.Environment.setting()))
  IO.puts("RESULT " <> inspect(Session.execute(s, "p", %{question: "where?"})))
  """

  defp write_app(dir) do
    File.mkdir_p!(Path.join(dir, "config"))

    File.write!(Path.join(dir, "mix.exs"), """
    defmodule RelApp.MixProject do
      use Mix.Project

      def project do
        [app: :rel_app, version: "0.1.0", deps: [{:dspex_native, path: #{inspect(File.cwd!())}}]]
      end

      def application, do: [extra_applications: [:logger]]
    end
    """)

    File.write!(Path.join(dir, "config/runtime.exs"), """
    import Config
    if venv = System.get_env("REL_APP_VENV"), do: config(:dspex_native, python: venv)
    """)
  end

  defp eval(release, env) do
    bin = Path.join(release, "bin/rel_app")

    task =
      Task.async(fn -> System.cmd(bin, ["eval", @program], env: env, stderr_to_stdout: true) end)

    {out, status} = Task.await(task, 120_000)
    assert status == 0, out
    out
  end

  @tag :tmp_dir
  test "a moved release runs a program in the venv set at boot", %{tmp_dir: tmp} do
    app = Path.join(tmp, "app")
    write_app(app)
    {out, status} = run_mix(["release", "--quiet"], [{"MIX_ENV", "prod"}], cd: app)
    assert status == 0, out

    # Moved, and the build left behind under another name: nothing may point back into it.
    release = Path.join(tmp, "moved/rel_app")
    File.mkdir_p!(Path.dirname(release))
    File.rename!(Path.join(app, "_build/prod/rel/rel_app"), release)
    File.rename!(app, app <> "_gone")
    on_exit(fn -> File.rm_rf!(tmp) end)

    # The venv made as the README's container recipe makes it: the release's own script.
    other = Path.join(tmp, "venv")
    [script] = Path.wildcard(Path.join(release, "lib/dspex_native-*/priv/dspex_venv.py"))
    {:ok, python} = DSPex.Native.Environment.build_python()
    {out, status} = System.cmd(python, [script, "setup", other], stderr_to_stdout: true)
    assert status == 0, out

    out = eval(release, [{"REL_APP_VENV", other}, {"DSPEX_PYTHON", nil}])
    assert beam_line(out, "SETTING") == inspect({:config, other})
    assert beam_line(out, "RESULT") == ~s({:ok, %{"answer" => "from the moved release"}})

    main = DSPex.Native.Environment.venv()
    out = eval(release, [{"REL_APP_VENV", nil}, {"DSPEX_PYTHON", main}])
    assert beam_line(out, "SETTING") == inspect({:env, main})
    assert beam_line(out, "RESULT") =~ "from the moved release"
  end
end
