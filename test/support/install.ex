defmodule DSPex.Native.InstallHelpers do
  @moduledoc false
  # For the install, doctor, run-time venv and release tests: cheap venvs, and mix in a
  # process of its own.

  alias DSPex.Native.Environment

  @doc """
  A second venv at `dir` that runs the main one's packages: made by the same base Python
  (`--without-pip`, a fraction of a second) with a `.pth` file pointing at the main venv's
  site-packages. Returns `dir`.
  """
  def linked_venv(dir) do
    empty_venv(dir)
    [site] = Path.wildcard(Path.join(Environment.venv(), "lib/python*/site-packages"))
    [own] = Path.wildcard(Path.join(dir, "lib/python*/site-packages"))
    File.write!(Path.join(own, "main_venv.pth"), site <> "\n")
    dir
  end

  @doc "A venv at `dir` made by the main venv's base Python, with nothing installed."
  def empty_venv(dir) do
    {:ok, facts} = Environment.inspect_python(Environment.venv())
    {_, 0} = System.cmd(facts["base_executable"], ["-m", "venv", "--without-pip", dir])
    dir
  end

  @doc """
  Runs `mix args` in an OS process of its own (in this project unless `cd:` says otherwise,
  with `MIX_ENV=test` unless `env` says otherwise); returns `{output, exit_status}`. Fails
  the test if it does not exit within `timeout:` ms.
  """
  def run_mix(args, env, opts \\ []) do
    cd = Keyword.get(opts, :cd, File.cwd!())
    env = Enum.uniq_by(env ++ [{"MIX_ENV", "test"}], &elem(&1, 0))

    task =
      Task.async(fn ->
        System.cmd("mix", args, cd: cd, env: env, stderr_to_stdout: true)
      end)

    Task.await(task, Keyword.get(opts, :timeout, 120_000))
  end

  @doc "The lines a mix task printed, without blank ones."
  def lines(output), do: String.split(output, "\n", trim: true)
end
