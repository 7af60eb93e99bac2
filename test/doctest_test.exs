defmodule DSPex.Native.DoctestTest do
  # Every iex example in the docs runs against the real runtime.
  use ExUnit.Case, async: true

  doctest DSPex.Native
  doctest DSPex.Native.Session
  doctest DSPex.Native.Error
end
