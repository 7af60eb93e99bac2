defmodule DSPex.Native.DoctestTest do
  # Every iex example in the docs runs against the real runtime. Some print (compile shows
  # DSPy's progress on stdout and stderr): the output is caught, not shown, so these run
  # alone (async: false) while standard error is swapped for a buffer.
  use ExUnit.Case, async: false

  setup_all do
    {:ok, out} = StringIO.open("")
    {:ok, err} = StringIO.open("")
    standard_error = Process.whereis(:standard_error)
    Process.unregister(:standard_error)
    Process.register(err, :standard_error)

    on_exit(fn ->
      Process.unregister(:standard_error)
      Process.register(standard_error, :standard_error)
    end)

    %{out: out}
  end

  setup %{out: out} do
    Process.group_leader(self(), out)
    :ok
  end

  doctest DSPex.Native
  doctest DSPex.Native.Session
  doctest DSPex.Native.Error
  doctest DSPex.Native.Py
  doctest DSPex.Native.Telemetry
end
