defmodule Mix.Tasks.DspexNative.Setup do
  @shortdoc "Creates or updates the Python environment (dspy, pinned) dspex_native runs"

  @moduledoc """
  Creates or updates the venv dspex_native runs, from the library's pinned
  `priv/python/requirements.txt`, showing progress and the total time.

      mix dspex_native.setup                       # the configured venv (see below)
      mix dspex_native.setup --path /srv/app/.venv
      mix dspex_native.setup --installer pip --force

  The venv goes where the runtime will look for it, `DSPex.Native.Environment.venv/0`:
  `config :dspex_native, python:`, else `DSPEX_PYTHON`, else the library's own `.venv`
  (for a dependency, `deps/dspex_native/.venv`). It is made by the Python the NIF links
  against (`PYO3_PYTHON`, else `python3` on `PATH`), so the two always match.

  It is idempotent: a stamp in the venv (the requirements' hash and the Python version)
  makes a second run print one line and do nothing. A venv made by another Python version
  is replaced; one made by this Python is updated in place (packages you added stay).

  Packages are installed with [uv](https://docs.astral.sh/uv/) when it can be had: from
  `PATH`, or installed once from PyPI into `~/.cache/dspex_native` (a couple of seconds).
  For the pinned set uv takes about 2 s, pip about 40 s; pip is the fallback.

  ## Options

    * `--path DIR` - the venv to create or update (default: the configured one)
    * `--python PYTHON` - the base interpreter to make it with (default: the build Python)
    * `--installer auto|uv|pip` - `auto` (the default) prefers uv
    * `--force` - install even when the stamp matches
  """
  use Mix.Task

  alias DSPex.Native.Environment

  @switches [path: :string, python: :string, installer: :string, force: :boolean]

  @impl true
  def run(argv) do
    {opts, _} = OptionParser.parse!(argv, strict: @switches)
    # Loads config (runtime.exs too) so the venv is the one the application will use.
    Mix.Task.run("app.config")
    venv = if opts[:path], do: Path.expand(opts[:path]), else: Environment.venv()

    python =
      opts[:python] ||
        case Environment.build_python() do
          {:ok, python} -> python
          {:error, why} -> Mix.raise("dspex_native.setup needs a Python to make the venv: #{why}")
        end

    args =
      ["setup", venv, "--requirements", Environment.requirements()] ++
        ["--installer", opts[:installer] || "auto"] ++
        if(opts[:force], do: ["--force"], else: [])

    # Progress streams as it comes; the script says how long it took.
    case Environment.script(python, args, into: IO.stream(:stdio, :line)) do
      {:ok, _} -> :ok
      {:error, _} -> Mix.raise("dspex_native.setup failed (see above)")
    end
  end
end
