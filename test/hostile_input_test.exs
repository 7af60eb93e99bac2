defmodule DSPex.Native.HostileInputTest do
  # Every term gets a clear answer: what Python can hold round-trips unchanged, everything
  # else is refused with :invalid_argument naming the offending part. Written with ExUnit
  # alone (no property-testing package can be fetched here): a seeded generator, thousands
  # of cases, and the seed in every failure message.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers
  alias DSPex.Native.{Error, Session}

  @cases 3_000

  # -- generators (seeded :rand, so a failure can be replayed) ----------------------------

  defp scalar do
    case :rand.uniform(11) do
      1 -> nil
      2 -> :rand.uniform(2) == 1
      3 -> :rand.uniform(2_000_001) - 1_000_001
      4 -> Enum.random([0, -1, 9_223_372_036_854_775_807, -9_223_372_036_854_775_808])
      5 -> (:rand.uniform(2) * 2 - 3) * Integer.pow(2, 64 + :rand.uniform(4_000))
      6 -> (:rand.uniform() - 0.5) * :math.pow(10, :rand.uniform(300))
      7 -> Enum.random([0.0, -0.0, 1.0e-308, 1.7976931348623157e308])
      8 -> string()
      9 -> Enum.random([:ok, :error, :"with space", :über, :"Elixir.Some.Module", :"héllo_🙂"])
      10 -> ""
      11 -> String.duplicate("x", :rand.uniform(2_000))
    end
  end

  defp string do
    len = :rand.uniform(12) - 1

    for _ <- 1..len,
        into: "",
        do:
          <<Enum.random([?a..?z, 0xE9..0xFF, 0x4E00..0x4E20, 0x1F600..0x1F610])
            |> Enum.random()::utf8>>
  end

  # Keys of one map share a kind, so no two are equal in Python (1 == 1.0 == True there).
  defp key(:string), do: string()
  defp key(:atom), do: Enum.random([:a, :b, :c, :d, :e, :question, :"odd key"])
  defp key(:int), do: :rand.uniform(1_000_000) - 500_000
  defp key(:tuple), do: {:rand.uniform(100), string()}

  defp term(0), do: scalar()

  defp term(depth) do
    case :rand.uniform(6) do
      n when n <= 2 ->
        scalar()

      3 ->
        for _ <- 1..(:rand.uniform(5) - 1), do: term(depth - 1)

      4 ->
        List.to_tuple(for _ <- 1..(:rand.uniform(4) - 1), do: term(depth - 1))

      _ ->
        kind = Enum.random([:string, :atom, :int, :tuple])
        Map.new(1..(:rand.uniform(5) - 1)//1, fn _ -> {key(kind), term(depth - 1)} end)
    end
  end

  defp seed do
    seed = :erlang.unique_integer([:positive])
    :rand.seed(:exsss, {seed, 7, 11})
    seed
  end

  # -- properties ---------------------------------------------------------------------------

  test "every representable term round-trips through Python unchanged" do
    seed = seed()

    for n <- 1..@cases do
      term = term(4)

      assert DSPex.Native.ping(term) == {:ok, term},
             "case #{n}, seed #{seed}: #{inspect(term, limit: 20)}"
    end
  end

  defp bad_leaf do
    Enum.random([
      {self(), "a pid"},
      {make_ref(), "a reference"},
      {fn -> :ok end, "a function"},
      {hd(Port.list()), "a port"},
      {<<0xFF, 0xFE, :rand.uniform(255)>>, "not valid UTF-8"},
      {<<1::3>>, "a bitstring"},
      {[1 | :tail], "an improper list"}
    ])
  end

  # Wraps `leaf` in random containers and returns the path the error must name.
  defp bury(leaf, 0), do: {leaf, "arguments"}

  defp bury(leaf, depth) do
    {inner, path} = bury(leaf, depth - 1)

    case :rand.uniform(3) do
      1 ->
        i = :rand.uniform(3) - 1
        {List.duplicate(0, i) ++ [inner], fn p -> "#{p}[#{i}]" end}

      2 ->
        {{:x, inner}, fn p -> "#{p}{1}" end}

      3 ->
        k = "k#{:rand.uniform(9)}"
        {%{k => inner, "other" => 1}, fn p -> "#{p}.#{k}" end}
    end
    |> then(fn {term, step} -> {term, rewrite(path, step)} end)
  end

  # `path` names the leaf relative to "arguments"; the new container goes around it.
  defp rewrite(path, step), do: String.replace_prefix(path, "arguments", step.("arguments"))

  test "every unrepresentable term is refused with :invalid_argument naming the part" do
    seed = seed()

    for n <- 1..@cases do
      {leaf, what} = bad_leaf()
      {term, path} = bury(leaf, :rand.uniform(4) - 1)
      context = "case #{n}, seed #{seed}: #{inspect(term, limit: 20)}"

      assert {:error, %Error{reason: :invalid_argument, message: message}} =
               DSPex.Native.ping(term),
             context

      assert message =~ path, context <> " -> " <> message
      assert message =~ what, context <> " -> " <> message
    end
  end

  test "map keys Python cannot hold apart, or cannot hash, are refused" do
    for {term, words} <- [
          {%{1 => :a, 1.0 => :b}, "equal in Python"},
          {%{"a" => 1, a: 2}, "equal in Python"},
          {%{true => 1, 1 => 2}, "equal in Python"},
          {%{[1] => :list_key}, "key that is a list"},
          {%{%{} => :map_key}, "key that is a map"},
          {%{{1, [2]} => :nested}, "key that is a list"}
        ] do
      assert {:error, %Error{reason: :invalid_argument, message: m}} = DSPex.Native.ping(term)
      assert m =~ words
    end
  end

  test "huge integers beyond what Python converts are refused, not truncated" do
    huge = Integer.pow(10, 5_000)
    assert {:error, %Error{reason: :invalid_argument, message: m}} = DSPex.Native.ping(huge)
    assert m =~ "more than 4000 digits"
    big = Integer.pow(7, 3_000)
    assert DSPex.Native.ping(-big) == {:ok, -big}
  end

  test "a term nested 100,000 levels deep is refused quickly" do
    deep = Enum.reduce(1..100_000, :leaf, fn _, acc -> [acc] end)
    assert {:error, %Error{reason: :invalid_argument, message: m}} = DSPex.Native.ping(deep)
    assert m =~ "deeper than 512 levels"
    deep_map = Enum.reduce(1..100_000, :leaf, fn _, acc -> %{"k" => acc} end)
    assert {:error, %Error{reason: :invalid_argument}} = DSPex.Native.ping(deep_map)
  end

  test "a 50 MB string and a map with a million keys round-trip (decoded off the schedulers)" do
    big = String.duplicate("abcdefghij", 5_000_000)
    assert {:ok, ^big} = DSPex.Native.ping(big, 60_000)

    many = Map.new(1..1_000_000, fn i -> {i, i} end)
    assert {:ok, back} = DSPex.Native.ping(many, 120_000)
    assert map_size(back) == 1_000_000
    assert back == many
  end

  test "atoms round-trip whatever their characters, also as map keys and from Python" do
    for atom <- [:héllo_ß, :"héllo_🙂", :日本語, :"🙂", String.to_atom(String.duplicate("🙂", 255))] do
      assert DSPex.Native.ping(atom) == {:ok, atom}
      assert DSPex.Native.ping(%{atom => [atom]}) == {:ok, %{atom => [atom]}}
    end

    assert {:ok, :"made_in_python_🐍"} =
             test_eval("import dspex_bridge\nresult = dspex_bridge.Atom('made_in_python_🐍')")
  end

  test "structs, charlists and nested tuples survive as plain terms" do
    for term <- [
          %URI{host: "example.com", port: 443},
          ~c"charlist",
          {{{1}, {2.5}}, {"three", {:four}}},
          [a: 1, b: [c: 2]]
        ] do
      assert DSPex.Native.ping(term) == {:ok, term}
    end
  end

  test "hostile inputs to the session API are clear errors" do
    s = Session.open!(lm: dummy(%{"answer" => "ok"}))
    :ok = Session.create_program(s, "p", signature: "question -> answer")

    for {inputs, words} <- [
          {%{question: self()}, "inputs.question is a pid"},
          {%{question: {:ok, make_ref()}}, "inputs.question{1} is a reference"},
          {%{self() => "x"}, "input names must be atoms or strings"},
          {%{question: Enum.reduce(1..1_000, 1, fn _, a -> [a] end)}, "deeper than 512"}
        ] do
      assert {:error, %Error{reason: :invalid_argument, message: m}} =
               Session.execute(s, "p", inputs)

      assert m =~ words
    end

    for id <- [<<0xC3, 0x28>>, "", String.duplicate("x", 300), {:id}, 1.5, nil] do
      assert {:error, %Error{reason: :invalid_argument}} =
               Session.create_program(s, id, signature: "a -> b")
    end

    for sig <- ["", "->", String.duplicate("a, ", 300) <> "b -> c", %{inputs: "q", outputs: [:a]}] do
      assert {:error, %Error{reason: :invalid_signature}} =
               Session.create_program(s, "sig", signature: sig)
    end

    # Still serving after all of that.
    assert {:ok, %{"answer" => "ok"}} = Session.execute(s, "p", %{question: "?"})
  end

  test "Python results with no Elixir form are :python_error naming where they are" do
    for {source, words} <- [
          {"result = float('nan')", "result is nan"},
          {"result = {'x': [1, float('inf')]}", "result['x'][1] is inf"},
          {"result = {1, 2}", "set"},
          {"result = b'bytes'", "bytes"},
          {"class R:\n    def __repr__(self):\n        raise ValueError('no repr')\nresult = [R()]",
           "result[0] is a Python R"},
          {"result = 10 ** 5000", "result"}
        ] do
      assert {:error, %Error{reason: :python_error, message: m}} = test_eval(source)
      assert m =~ words, "#{source} -> #{m}"
    end

    # Pydantic objects have a plain form: they come back as maps.
    assert {:ok, %{"a" => 1, "b" => ["x"]}} =
             test_eval("""
             import pydantic
             class M(pydantic.BaseModel):
                 a: int
                 b: list[str]
             result = M(a=1, b=["x"])
             """)
  end
end
