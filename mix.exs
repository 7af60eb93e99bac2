defmodule Mix.Tasks.Compile.DspexNative do
  @moduledoc """
  Builds the Rust NIF (`cargo build --release`) and copies it to `priv/native/`.

  Defined here, in `mix.exs`, so it exists before the project compiles: hex's `rustler`
  package cannot be fetched on every machine this project runs on.

  The NIF links against the shared libpython of a *build* Python: `PYO3_PYTHON` if set,
  else `python3` on `PATH` resolved past shims to its real interpreter
  (`priv/dspex_venv.py build-python`). No venv is needed to build. Which venv runs is a
  run-time setting (`DSPex.Native.Environment`), so changing it never rebuilds.

  Cargo runs only when an input changed (a manifest of the sources' mtimes, `Cargo.toml`,
  `Cargo.lock` and the build Python), or with `mix compile --force`; its progress is shown.
  """
  use Mix.Task.Compiler

  @lib "libdspex_native.so"
  @manifest "compile.dspex_native"

  @impl true
  def run(args) do
    root = root()
    python = build_python!(root)
    installed = Path.join([root, "priv", "native", @lib])
    inputs = inputs(root, python)
    manifest = manifest(root)

    if "--force" not in args and File.exists?(installed) and read_manifest(manifest) == inputs do
      {:noop, []}
    else
      build!(root, python)
      copy(Path.join([target_dir(root), "release", @lib]), installed)
      File.write!(manifest, :erlang.term_to_binary(inputs))
      {:ok, []}
    end
  end

  @impl true
  def manifests, do: [manifest(root())]

  @impl true
  def clean, do: File.rm(manifest(root()))

  defp root, do: Path.dirname(Mix.Project.project_file())

  # Beside cargo's output, not per Mix env: every env (and every app using this checkout as
  # a path dependency) shares the one library in priv/native.
  defp manifest(root), do: Path.join(target_dir(root), @manifest)

  defp read_manifest(path) do
    case File.read(path) do
      {:ok, binary} -> :erlang.binary_to_term(binary)
      {:error, _} -> nil
    end
  end

  # What the library depends on: the build Python and every file cargo reads for it.
  defp inputs(root, python) do
    files =
      Path.wildcard(Path.join(root, "{Cargo.toml,Cargo.lock}")) ++
        Path.wildcard(Path.join(root, "native/*/{Cargo.toml,build.rs}")) ++
        Path.wildcard(Path.join(root, "native/*/src/**/*.rs"))

    %{python: python, files: Map.new(files, &{&1, File.stat!(&1, time: :posix).mtime})}
  end

  defp build!(root, python) do
    Mix.shell().info("==> dspex_native: building the NIF (links #{python}'s libpython)")
    started = System.monotonic_time(:millisecond)
    cmd = ["build", "--release", "-p", "dspex_native"]

    case System.cmd("cargo", cmd,
           cd: root,
           env: [{"PYO3_PYTHON", python}],
           into: IO.stream(:stdio, :line),
           stderr_to_stdout: true
         ) do
      {_, 0} ->
        seconds = (System.monotonic_time(:millisecond) - started) / 1000

        Mix.shell().info(
          "==> dspex_native: NIF built in #{:erlang.float_to_binary(seconds, decimals: 1)} s"
        )

      {_, status} ->
        Mix.raise("cargo build of the dspex_native NIF failed (exit #{status})")
    end
  end

  defp build_python!(root) do
    case System.get_env("PYO3_PYTHON") do
      python when python not in [nil, ""] ->
        python

      _ ->
        python3 =
          System.find_executable("python3") ||
            Mix.raise(
              "dspex_native needs python3 (with a shared libpython) on PATH to build the NIF, or PYO3_PYTHON"
            )

        # The same resolution the Makefile uses, so cargo never rebuilds pyo3 between them.
        case System.cmd(python3, [Path.join(root, "priv/dspex_venv.py"), "build-python"],
               stderr_to_stdout: true
             ) do
          {out, 0} -> String.trim(out)
          {out, _} -> Mix.raise("dspex_native cannot build the NIF: " <> String.trim(out))
        end
    end
  end

  defp target_dir(root) do
    case System.get_env("CARGO_TARGET_DIR") do
      dir when dir not in [nil, ""] -> Path.expand(dir, root)
      _ -> Path.join(root, "target")
    end
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
      extra_applications: [:logger],
      # The venv to run when neither `config :dspex_native, python:` nor DSPEX_PYTHON says:
      # this project's own (for a dependency, deps/dspex_native/.venv). Read at run time.
      env: [default_venv: Path.join(__DIR__, ".venv")]
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
