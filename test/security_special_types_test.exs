defmodule DSPex.Native.SecuritySpecialTypesTest do
  # DSPy resolves a type name it does not know by importing a module of that name, so the
  # special type names (History, Image, ...) would run any History.py on sys.path. Here a
  # booby-trapped module file for each name sits at the front of the embedded Python's
  # sys.path: using the names in a signature must import nothing. Not async: it changes
  # the interpreter's sys.path.
  use ExUnit.Case, async: false

  import DSPex.Native.Test.Security
  import DSPex.Native.TestHelpers, only: [test_eval: 1]
  alias DSPex.Native.{Error, Session}

  @moduletag :capture_log

  @names ~w(Image History Tool ToolCalls Code Audio)

  setup do
    dir = sentinel_dir()
    mods = Path.join(dir, "mods")
    File.mkdir_p!(mods)

    for name <- @names do
      File.write!(Path.join(mods, "#{name}.py"), """
      open(#{inspect(Path.join(dir, "imported_" <> name))}, "w").close()
      """)
    end

    {:ok, true} =
      test_eval("""
      import sys, importlib
      sys.path.insert(0, #{inspect(mods)})
      importlib.invalidate_caches()
      result = True
      """)

    on_exit(fn ->
      {:ok, _} =
        test_eval("""
        import sys, importlib
        while #{inspect(mods)} in sys.path:
            sys.path.remove(#{inspect(mods)})
        for name in #{inspect(@names)}:
            module = sys.modules.get(name)
            if module is not None and #{inspect(mods)} in str(getattr(module, "__file__", "")):
                del sys.modules[name]
        importlib.invalidate_caches()
        result = True
        """)
    end)

    %{dir: dir, mods: mods}
  end

  defp signatures(name) do
    [
      "q: #{name} -> a",
      "q -> a: #{name}",
      "q -> a: dspy.#{name}",
      "q: dspy.#{name} -> a",
      "q -> a: list[#{name}]",
      "q: Optional[#{name}] -> a",
      "q -> a: #{name} | None",
      "q -> a: typing.#{name}"
    ]
  end

  # Which trap modules Python has imported from our directory (none, or the test failed).
  defp imported(mods) do
    {:ok, names} =
      test_eval("""
      import sys
      result = sorted(n for n, m in list(sys.modules.items())
                      if #{inspect(mods)} in str(getattr(m, "__file__", None) or ""))
      """)

    names
  end

  test "the trap is armed: each module is importable from the front of sys.path", %{mods: mods} do
    {:ok, origins} =
      test_eval("""
      import importlib.util
      result = [importlib.util.find_spec(n).origin for n in #{inspect(@names)}]
      """)

    assert origins == Enum.map(@names, &Path.join(mods, "#{&1}.py"))
  end

  test "special type names in create_program import nothing", %{dir: dir, mods: mods} do
    s = Session.open!(lm: {:dummy, %{"" => %{"a" => "x"}}})

    for name <- @names, {sig, n} <- Enum.with_index(signatures(name)) do
      case Session.create_program(s, "#{name}#{n}", signature: sig) do
        :ok -> :ok
        {:error, %Error{reason: :invalid_signature}} -> :ok
        other -> flunk("#{sig}: #{inspect(other)}")
      end

      assert listing(dir) == ["mods"], "#{sig} imported #{inspect(listing(dir) -- ["mods"])}"
    end

    assert imported(mods) == []
  end

  test "special type names in an imported export import nothing", %{dir: dir, mods: mods} do
    s = Session.open!(lm: {:dummy, %{"" => %{"a" => "x"}}})
    base = genuine_export("q -> a")

    for name <- @names, {sig, n} <- Enum.with_index(signatures(name)) do
      case Session.import_program(s, "#{name}#{n}", Map.put(base, "signature", sig)) do
        :ok ->
          :ok

        {:error, %Error{reason: reason}} when reason in [:invalid_signature, :invalid_argument] ->
          :ok

        other ->
          flunk("#{sig}: #{inspect(other)}")
      end

      assert listing(dir) == ["mods"], "#{sig} imported #{inspect(listing(dir) -- ["mods"])}"
    end

    assert imported(mods) == []
  end
end
