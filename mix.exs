defmodule Mix.Tasks.Compile.DspexNative do
  @moduledoc """
  Builds the Rust NIF (`cargo build --release`) and copies it to `priv/native/`.

  Defined here, in `mix.exs`, so it exists before the project compiles: hex's `rustler`
  package cannot be fetched on every machine this project runs on. The crate links against
  the Python named by `PYO3_PYTHON`, else `DSPEX_PYTHON`, else the project's `.venv`.
  """
  use Mix.Task.Compiler

  @lib "libdspex_native.so"

  @impl true
  def run(_args) do
    root = Path.dirname(Mix.Project.project_file())
    python = python!(root)
    cmd = ["build", "--release", "--quiet", "-p", "dspex_native"]

    case System.cmd("cargo", cmd,
           cd: root,
           env: [{"PYO3_PYTHON", python}],
           stderr_to_stdout: true
         ) do
      {_, 0} ->
        copy(
          Path.join([root, "target", "release", @lib]),
          Path.join([root, "priv", "native", @lib])
        )

        {:ok, []}

      {output, status} ->
        Mix.shell().error(output)
        Mix.raise("cargo build of the dspex_native NIF failed (exit #{status})")
    end
  end

  defp python!(root) do
    candidates = [
      System.get_env("PYO3_PYTHON"),
      with(dir when is_binary(dir) <- System.get_env("DSPEX_PYTHON"), do: venv_python(dir)),
      Path.join([root, ".venv", "bin", "python"])
    ]

    Enum.find(candidates, &(is_binary(&1) and File.exists?(&1))) ||
      Mix.raise("""
      dspex_native needs a Python environment with dspy to build against.
      Run `make venv` in #{root}, or set DSPEX_PYTHON to a venv made with the Python you
      will run (its libpython is what the NIF links).
      """)
  end

  defp venv_python(path) do
    if File.dir?(path), do: Path.join([path, "bin", "python"]), else: path
  end

  defp copy(from, to) do
    File.mkdir_p!(Path.dirname(to))

    # Copy only when changed: the BEAM may have the old file mapped.
    unless File.exists?(to) and File.read!(from) == File.read!(to) do
      tmp = to <> ".tmp"
      File.cp!(from, tmp)
      File.rename!(tmp, to)
    end
  end
end

defmodule DSPex.Native.MixProject do
  use Mix.Project

  def project do
    [
      app: :dspex_native,
      version: "0.1.0",
      elixir: "~> 1.14",
      # The NIF first: the Elixir compiler loads DSPex.Native.NIF, whose @on_load needs it.
      compilers: [:dspex_native] ++ Mix.compilers(),
      elixirc_paths: elixirc_paths(Mix.env()),
      start_permanent: Mix.env() == :prod,
      deps: [],
      name: "DSPex.Native",
      description: "DSPy embedded in the BEAM through a Rust NIF, in isolated sessions"
    ]
  end

  def application do
    [
      mod: {DSPex.Native.Application, []},
      extra_applications: [:logger]
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
