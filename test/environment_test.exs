defmodule DSPex.Native.EnvironmentTest do
  # Changes the application env and DSPEX_PYTHON of this BEAM: not async.
  use ExUnit.Case, async: false

  alias DSPex.Native.Environment

  doctest Environment

  setup do
    config = Application.get_env(:dspex_native, :python)
    env = System.get_env("DSPEX_PYTHON")

    on_exit(fn ->
      if config,
        do: Application.put_env(:dspex_native, :python, config),
        else: Application.delete_env(:dspex_native, :python)

      if env, do: System.put_env("DSPEX_PYTHON", env), else: System.delete_env("DSPEX_PYTHON")
    end)
  end

  test "the venv: config :python, else DSPEX_PYTHON, else the library's own .venv" do
    Application.delete_env(:dspex_native, :python)
    System.delete_env("DSPEX_PYTHON")
    assert Environment.setting() == {:default, Path.expand(".venv")}

    System.put_env("DSPEX_PYTHON", "/srv/env-venv")
    assert Environment.setting() == {:env, "/srv/env-venv"}

    Application.put_env(:dspex_native, :python, "/srv/config-venv/bin/python3.11")
    assert Environment.setting() == {:config, "/srv/config-venv"}
    assert Environment.venv() == "/srv/config-venv"
  end

  test "the NIF links the build Python's libpython" do
    {:ok, python} = Environment.build_python()
    {:ok, facts} = Environment.inspect_python(python)
    assert {:ok, facts["libpython"]} == Environment.linked_libpython()
  end
end
