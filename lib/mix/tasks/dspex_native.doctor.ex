defmodule Mix.Tasks.DspexNative.Doctor do
  @shortdoc "Checks what dspex_native needs, one line per check, with the fix"

  @moduledoc """
  Checks everything dspex_native needs to build and run, and prints one line per check:
  `ok`, `warn` or `FAIL`, what was found, and for a failure how to fix it.

      mix dspex_native.doctor

  The checks: Erlang/OTP and Elixir versions; `cargo`; the build Python (the NIF links its
  shared libpython); the venv that runs (`DSPex.Native.Environment.venv/0`), its
  requirements stamp and dspy's version in it; the NIF's linked libpython against the
  venv's base Python; the NIF loaded; the runtime started and ready.

  It starts `:dspex_native` (not your application) to check the runtime. Exits with status
  1 if any check fails, 0 otherwise (warnings do not fail).
  """
  use Mix.Task

  alias DSPex.Native.Environment

  @setup "run `mix dspex_native.setup`"

  @impl true
  def run(_argv) do
    Mix.Task.run("app.config")
    results = checks()
    for {status, name, text} <- results, do: Mix.shell().info(line(status, name, text))
    if Enum.any?(results, &(elem(&1, 0) == :fail)), do: exit({:shutdown, 1}), else: :ok
  end

  defp line(status, name, text) do
    tag = %{ok: "ok  ", warn: "warn", fail: "FAIL"}[status]
    "#{tag} #{String.pad_trailing(name, 16)} #{text}"
  end

  # Each check is {status, name, "what was found[; fix: how]"}; several share what the
  # venv's own Python says about itself.
  defp checks do
    venv = Environment.setting()
    facts = venv_facts(elem(venv, 1))

    [
      otp(),
      elixir(),
      cargo(),
      build_python(),
      venv_check(venv, facts),
      stamp(facts),
      dspy(facts),
      linked(facts),
      nif(),
      runtime()
    ]
  end

  defp otp do
    release = System.otp_release()
    found = "OTP #{release} (erts #{:erlang.system_info(:version)})"

    if String.to_integer(release) >= 25,
      do: {:ok, "Erlang/OTP", found},
      else: {:fail, "Erlang/OTP", "#{found}; fix: install Erlang/OTP 25 or later"}
  end

  defp elixir do
    if Version.match?(System.version(), ">= 1.14.0"),
      do: {:ok, "Elixir", System.version()},
      else: {:fail, "Elixir", "#{System.version()}; fix: install Elixir 1.14 or later"}
  end

  # Only building needs cargo: a built NIF runs without it.
  defp cargo do
    case System.find_executable("cargo") && System.cmd("cargo", ["--version"]) do
      {version, 0} -> {:ok, "cargo", String.trim(version)}
      _ -> {:warn, "cargo", "not found (needed to build the NIF); fix: install Rust (rustup)"}
    end
  end

  defp build_python do
    with {:ok, python} <- Environment.build_python(),
         {:ok, facts} <- Environment.inspect_python(python) do
      case facts["libpython"] do
        "" ->
          {:fail, "build Python",
           "#{python} (#{facts["version"]}) has no shared libpython; fix: use a Python built " <>
             "with --enable-shared (Debian: libpython3-dev), or set PYO3_PYTHON to one"}

        lib ->
          {:ok, "build Python", "#{python} (#{facts["version"]}, #{lib})"}
      end
    else
      {:error, why} ->
        {:fail, "build Python",
         "#{why}; fix: put python3 with a shared libpython on PATH or set PYO3_PYTHON"}
    end
  end

  defp venv_facts(venv) do
    cond do
      not File.dir?(venv) -> {:error, "#{venv} does not exist"}
      not File.exists?(Path.join(venv, "pyvenv.cfg")) -> {:error, "#{venv} is not a venv"}
      true -> Environment.inspect_python(venv)
    end
  end

  defp venv_check({source, venv}, facts) do
    from = %{config: "config :python", env: "DSPEX_PYTHON", default: "default"}[source]

    case facts do
      {:ok, f} ->
        {:ok, "venv", "#{venv} (Python #{f["version"]}, from #{from})"}

      {:error, why} ->
        {:fail, "venv",
         "#{why} (from #{from}); fix: #{@setup}, or point DSPEX_PYTHON or " <>
           "config :dspex_native, python: at an existing venv"}
    end
  end

  defp stamp({:ok, %{"stamp" => "ok"}}), do: {:ok, "requirements", "the pinned set is installed"}

  defp stamp({:ok, %{"stamp" => state}}),
    do: {:warn, "requirements", "stamp #{state}: not made from the current pins; fix: #{@setup}"}

  defp stamp({:error, _}), do: {:fail, "requirements", "no venv; fix: #{@setup}"}

  defp dspy({:ok, %{"dspy" => ""}}),
    do: {:fail, "dspy", "not installed in the venv; fix: #{@setup}"}

  defp dspy({:ok, %{"dspy" => version}}), do: {:ok, "dspy", version}
  defp dspy({:error, _}), do: {:fail, "dspy", "no venv; fix: #{@setup}"}

  defp linked(facts) do
    case {Environment.linked_libpython(), facts} do
      {{:error, why}, _} ->
        {:fail, "NIF libpython", "#{Environment.nif_path()}: #{why}; fix: `mix compile --force`"}

      {{:ok, lib}, {:ok, %{"libpython" => lib}}} ->
        {:ok, "NIF libpython", "#{lib}, the venv's base Python's"}

      {{:ok, lib}, {:ok, f}} ->
        {:fail, "NIF libpython",
         "#{lib}, but the venv runs on #{blank(f["libpython"])} (Python #{f["version"]}); " <>
           "fix: #{@setup} with that Python (--python), or rebuild with PYO3_PYTHON set to " <>
           "the venv's base Python and `mix compile --force`"}

      {{:ok, lib}, {:error, _}} ->
        {:ok, "NIF libpython", lib}
    end
  end

  defp blank(""), do: "no shared libpython"
  defp blank(lib), do: lib

  defp nif do
    Code.ensure_loaded(DSPex.Native.NIF)

    case DSPex.Native.NIF.load_error() do
      nil ->
        {:ok, "NIF", "loaded from #{Environment.nif_path()}"}

      why ->
        {:fail, "NIF", "#{why}; fix: `mix compile --force` (see `mix compile` output)"}
    end
  end

  defp runtime do
    Application.load(:dspex_native)

    if Application.get_env(:dspex_native, :start, true) do
      started()
    else
      # The host's supervision tree starts it (`{DSPex.Native, opts}`).
      {:warn, "runtime", "not started with the application (config :dspex_native, start: false)"}
    end
  end

  defp started do
    with {:ok, _} <- Application.ensure_all_started(:dspex_native),
         :ok <- DSPex.Native.await_ready(120_000) do
      {:ok, "runtime", "ready (#{DSPex.Native.stats().workers} workers)"}
    else
      # A bad setting or environment fails the application's start with the error.
      {:error, {:dspex_native, {{:shutdown, {:failed_to_start_child, _, %{message: m}}}, _}}} ->
        {:fail, "runtime", "#{m}; fix: the failed checks above"}

      {:error, %DSPex.Native.Error{message: message}} ->
        {:fail, "runtime", "#{message}; fix: the failed checks above"}

      {:error, why} ->
        {:fail, "runtime", "the application did not start: #{inspect(why)}"}
    end
  end
end
