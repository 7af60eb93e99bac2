defmodule DSPex.Native.ProtocolTest do
  # The protocol between Elixir, Rust and Python is declared once on each side; these tests
  # keep the sides in step: error reasons, and the operations a session takes.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers, only: [test_eval: 1]
  alias DSPex.Native.Error

  # The rows of the first table whose header names the reasons (up to its first blank line).
  defp table_reasons(text) do
    [_, table | _] =
      String.split(text, ~r/^\| (`%DSPex.Native.Error\{reason: \.\.\.\}`|reason) \| meaning \|$/m,
        parts: 2
      ) ++ [""]

    [table | _] = String.split(table, "\n\n", parts: 2)

    Regex.scan(~r/^\| `:([a-z_]+)` \|/m, table, capture: :all_but_first)
    |> List.flatten()
    |> Enum.map(&String.to_atom/1)
    |> MapSet.new()
  end

  test "the README and Error's docs list exactly the reasons Error.reasons/0 has" do
    reasons = MapSet.new(Error.reasons())
    readme = File.read!(Path.expand("../README.md", __DIR__))
    assert table_reasons(readme) == reasons

    {:docs_v1, _, _, _, %{"en" => moduledoc}, _, _} = Code.fetch_docs(Error)
    assert table_reasons(moduledoc) == reasons
  end

  test "every reason the Python bridge reports is one Elixir knows" do
    {:ok, python} =
      test_eval("""
      from dspex_bridge.errors import REASONS
      result = sorted(REASONS)
      """)

    assert python != []
    assert MapSet.subset?(MapSet.new(python, &String.to_atom/1), MapSet.new(Error.reasons()))
  end

  test "Rust knows exactly Elixir's reasons, and every operation Elixir sends" do
    {:ok, protocol} = DSPex.Native.NIF.protocol()
    assert MapSet.new(protocol.reasons) == MapSet.new(Error.reasons())

    source = File.read!(Path.expand("../lib/dspex/native/requests.ex", __DIR__))
    sent = Regex.scan(~r/request\(session, "([a-z_]+)"/, source, capture: :all_but_first)
    sent = sent |> List.flatten() |> MapSet.new()
    assert MapSet.size(sent) >= 15
    assert MapSet.subset?(sent, MapSet.new(protocol.ops))

    {:ok, python} =
      test_eval("""
      from dspex_bridge.session import OPS
      result = sorted(OPS)
      """)

    assert MapSet.new(python) == MapSet.new(protocol.ops)
  end

  test "Rust and Elixir send times in the same unit" do
    {:ok, protocol} = DSPex.Native.NIF.protocol()
    assert protocol.time_unit == DSPex.Native.Job.time_unit()
    # The answer carries its queue and Python times as floats in that unit.
    tag = :erlang.alias()
    {:ok, _job} = DSPex.Native.NIF.global_call("ping", :pong, tag)

    assert_receive {^tag, {:ok, :pong}, queue, python}
                   when is_float(queue) and is_float(python),
                   5_000

    :erlang.unalias(tag)
  end
end
