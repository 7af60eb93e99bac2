defmodule DSPex.Native.Environment do
  @moduledoc """
  Where the Python environment is, and what is in it: the one place that resolves the venv
  the runtime runs, for the application, `mix dspex_native.setup` and
  `mix dspex_native.doctor`.

  Building and running are separate. The NIF links against the shared libpython of a
  *build* Python (`PYO3_PYTHON`, else `python3` on `PATH`; see `build_python/0`), and no
  venv is needed to build. Which venv runs is a run-time setting only, read when the
  runtime starts:

    1. `config :dspex_native, python: "/path/to/venv"` (in a release: `config/runtime.exs`);
    2. the `DSPEX_PYTHON` environment variable;
    3. the library's own `.venv` (for a dependency, `deps/dspex_native/.venv`), the path
       `mix dspex_native.setup` fills by default.

  The venv must have been made by the same CPython release the NIF links against (its
  C extensions are built for that ABI); the runtime checks this at start-up.
  """

  @script "dspex_venv.py"

  @doc """
  The venv the runtime runs, as an absolute directory: `config :dspex_native, python:`, else
  `DSPEX_PYTHON`, else the library's own `.venv`. A path to a venv's `bin/python` counts as
  its venv.

  ## Examples

      iex> DSPex.Native.Environment.venv() |> Path.type()
      :absolute
  """
  @spec venv() :: String.t()
  def venv, do: elem(setting(), 1)

  @doc """
  The venv with where it was set: `{:config | :env | :default, path}`.

  ## Examples

      iex> {source, _path} = DSPex.Native.Environment.setting()
      iex> source in [:config, :env, :default]
      true
  """
  @spec setting() :: {:config | :env | :default, String.t()}
  def setting do
    {source, path} =
      case {Application.get_env(:dspex_native, :python), System.get_env("DSPEX_PYTHON")} do
        {path, _} when path not in [nil, ""] -> {:config, path}
        {_, path} when path not in [nil, ""] -> {:env, path}
        _ -> {:default, default_venv()}
      end

    {source, as_venv(Path.expand(to_string(path)))}
  end

  # `<venv>/bin/python3.11` names the venv; anything else is taken as the venv itself.
  defp as_venv(path) do
    if Path.basename(Path.dirname(path)) == "bin" and Path.basename(path) =~ ~r/^python/ do
      Path.dirname(Path.dirname(path))
    else
      path
    end
  end

  defp default_venv do
    # get_env does not load the application; a script started with -pa may not have.
    Application.load(:dspex_native)
    Application.get_env(:dspex_native, :default_venv) || Path.expand(".venv")
  end

  @doc """
  The Python the NIF links against when it is built: `PYO3_PYTHON`, else `python3` on
  `PATH` resolved to its real interpreter (past pyenv's shims and venvs). The compile step
  in `mix.exs` and the Makefile resolve it the same way, so cargo never rebuilds between
  them.

  ## Examples

      iex> {:ok, python} = DSPex.Native.Environment.build_python()
      iex> File.exists?(python)
      true
  """
  @spec build_python() :: {:ok, String.t()} | {:error, String.t()}
  def build_python do
    case System.get_env("PYO3_PYTHON") do
      python when python not in [nil, ""] ->
        {:ok, python}

      _ ->
        with {:ok, python3} <- find("python3"), do: script(python3, ["build-python"])
    end
  end

  @doc """
  Facts about a Python interpreter (`<venv>/bin/python` or a base Python), as reported by
  itself: `"version"`, `"prefix"`, `"base_prefix"`, `"libpython"` (the resolved shared
  library, `""` if none), `"dspy"` (its version, `""` if not installed) and `"stamp"`
  (`"ok"`, `"stale"` or `"missing"`: whether `mix dspex_native.setup` installed the current
  requirements into this venv).

  ## Examples

      iex> {:ok, facts} = DSPex.Native.Environment.inspect_python(DSPex.Native.Environment.venv())
      iex> facts["prefix"] == DSPex.Native.Environment.venv()
      true
  """
  @spec inspect_python(String.t()) :: {:ok, %{String.t() => String.t()}} | {:error, String.t()}
  def inspect_python(python_or_venv) do
    python =
      if File.dir?(python_or_venv),
        do: Path.join([python_or_venv, "bin", "python"]),
        else: python_or_venv

    with true <- File.exists?(python) || {:error, "no Python at #{python}"},
         {:ok, out} <- script(python, ["inspect", "--requirements", requirements()]) do
      lines = String.split(out, "\n", trim: true)
      {:ok, Map.new(for line <- lines, [k, v] <- [String.split(line, "=", parts: 2)], do: {k, v})}
    end
  end

  @doc """
  The libpython the built NIF (`priv/native/libdspex_native.so`) loads, resolved (`ldd`).

  ## Examples

      iex> {:ok, lib} = DSPex.Native.Environment.linked_libpython()
      iex> Path.basename(lib) =~ "libpython3"
      true
  """
  @spec linked_libpython(String.t()) :: {:ok, String.t()} | {:error, String.t()}
  def linked_libpython(nif \\ nif_path()) do
    with {:ok, ldd} <- find("ldd"),
         true <- File.exists?(nif) || {:error, "#{nif} does not exist"},
         {out, 0} <- System.cmd(ldd, [nif], stderr_to_stdout: true) do
      case Regex.run(~r/libpython\S*\s+=>\s+(\S+)/, out) do
        [_, "not"] -> {:error, "its libpython is not found by the loader:\n#{out}"}
        [_, path] -> {:ok, realpath(path)}
        nil -> {:error, "it links no libpython"}
      end
    else
      {out, status} when is_integer(status) -> {:error, "ldd failed: #{String.trim(out)}"}
      error -> error
    end
  end

  # Follows the symlinks a library name goes through (libpython3.11.so → .so.1.0).
  defp realpath(path) do
    case :file.read_link(path) do
      {:ok, target} -> realpath(Path.expand(to_string(target), Path.dirname(path)))
      {:error, _} -> path
    end
  end

  @doc """
  The NIF library's path in this application's `priv`.

  ## Examples

      iex> Path.basename(DSPex.Native.Environment.nif_path())
      "libdspex_native.so"
  """
  @spec nif_path() :: String.t()
  def nif_path, do: Path.join(priv(), "native/libdspex_native.so")

  @doc """
  The pinned requirements `mix dspex_native.setup` installs.

  ## Examples

      iex> Path.basename(DSPex.Native.Environment.requirements())
      "requirements.txt"
  """
  @spec requirements() :: String.t()
  def requirements, do: Path.join(priv(), "python/requirements.txt")

  @doc """
  Runs the install script (`priv/#{@script}`, standard-library Python) with `python`:
  `{:ok, output}` or `{:error, output}`. With `into:` the output streams there instead
  (for progress) and `{:ok, ""}` or `{:error, ""}` comes back.

  ## Examples

      iex> {:ok, python} = DSPex.Native.Environment.build_python()
      iex> {:ok, out} = DSPex.Native.Environment.script(python, ["build-python"])
      iex> File.exists?(out)
      true
  """
  @spec script(String.t(), [String.t()], keyword()) :: {:ok, String.t()} | {:error, String.t()}
  def script(python, args, opts \\ []) do
    into = Keyword.get(opts, :into, "")

    case System.cmd(python, [Path.join(priv(), @script) | args],
           into: into,
           stderr_to_stdout: true
         ) do
      {out, 0} when is_binary(out) -> {:ok, String.trim(out)}
      {out, _} when is_binary(out) -> {:error, String.trim(out)}
      {_, 0} -> {:ok, ""}
      {_, _} -> {:error, ""}
    end
  rescue
    e in ErlangError -> {:error, "cannot run #{python}: #{inspect(e.original)}"}
  end

  defp find(name) do
    case System.find_executable(name) do
      nil -> {:error, "#{name} is not on PATH"}
      path -> {:ok, path}
    end
  end

  defp priv, do: to_string(:code.priv_dir(:dspex_native))
end
