defmodule DSPex.Native.DeepTermsTest do
  # Deep and big terms, each case in a BEAM of its own: before the codecs walked with an
  # explicit stack, these crashed the BEAM (a dirty scheduler's stack overflowed: exit
  # 139), took gigabytes (error paths copied at every level), or held a normal scheduler
  # for seconds.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers

  @moduletag timeout: 300_000

  # `nest.(kind, depth)`: a 1 MB string inside `depth` levels in all (the string is the
  # last), through lists, maps, tuples, or a map whose key holds the rest (as tuples: a
  # list or map cannot be a Python dict key). `py_nest` builds the same in Python.
  @nesting ~S"""
  leaf = String.duplicate("x", 1_000_000)

  nest = fn
    :map_key, depth ->
      %{Enum.reduce(1..(depth - 2)//1, leaf, fn _, t -> {t} end) => "v"}

    kind, depth ->
      Enum.reduce(2..depth//1, leaf, fn _, t ->
        case kind do
          :list -> [t]
          :map -> %{"k" => t}
          :tuple -> {t}
        end
      end)
  end

  py_nest = fn kind, depth ->
    {step, times, result} =
      case kind do
        :list -> {"[t]", depth - 1, "t"}
        :map -> {"{'k': t}", depth - 1, "t"}
        :tuple -> {"(t,)", depth - 1, "t"}
        :map_key -> {"(t,)", depth - 2, "{t: 'v'}"}
      end

    "t = 'x' * 1_000_000\nfor _ in range(#{times}):\n    t = #{step}\nresult = #{result}"
  end

  kinds = [:list, :map, :tuple, :map_key]
  """

  # Reports how deep its input nests, without recursion (and without an LM).
  @depth_module """
  import dspy

  class Depth(dspy.Module):
      def forward(self, value):
          deepest, todo = 0, [(value, 1)]
          while todo:
              v, d = todo.pop()
              deepest = max(deepest, d)
              if isinstance(v, dict):
                  todo.extend((x, d + 1) for pair in v.items() for x in pair)
              elif isinstance(v, (list, tuple)):
                  todo.extend((x, d + 1) for x in v)
          return dspy.Prediction(depth=deepest)
  """

  test "depth 512 around a 1 MB leaf crosses both ways, as an input and from a tool; 513 is refused naming the place" do
    output =
      run_beam(
        start_source("[warm: false]") <>
          @nesting <>
          "source = #{inspect(@depth_module)}\n" <>
          ~S"""
          s = Session.open!()
          {:ok, ["Depth"]} = Session.load_module(s, "depth", source)
          :ok = Session.create_program(s, "depth", module: {:custom, "Depth"})

          agent = fn term ->
            lm =
              {:dummy,
               [
                 %{"next_thought" => "t", "next_tool_name" => "deep", "next_tool_args" => %{}},
                 %{"next_thought" => "d", "next_tool_name" => "finish", "next_tool_args" => %{}},
                 %{"reasoning" => "r", "answer" => "a"}
               ]}

            a = Session.open!(lm: lm)
            tool = %{name: "deep", description: "deep data", args: [], fun: fn _ -> term end}

            :ok =
              Session.create_program(a, "agent",
                signature: "question -> answer",
                module: :react,
                tools: [tool],
                max_iters: 3
              )

            {:ok, %{"trajectory" => %{"observation_0" => seen}}} =
              Session.execute(a, "agent", %{question: "?"}, timeout: 60_000)

            seen
          end

          for kind <- kinds do
            t = nest.(kind, 512)
            IO.puts("IN #{kind} #{DSPex.Native.ping(t, 60_000) == {:ok, t}}")
            IO.puts("OUT #{kind} #{test_eval(py_nest.(kind, 512), 60_000) == {:ok, t}}")
            IO.puts("TOOL #{kind} #{agent.(t) == t}")

            {:ok, %{"depth" => depth}} = Session.execute(s, "depth", %{value: t}, timeout: 60_000)
            IO.puts("INPUT #{kind} #{depth}")

            deeper = nest.(kind, 513)
            {:error, e} = DSPex.Native.ping(deeper, 60_000)
            IO.puts("IN513 #{kind} #{e.reason} #{e.message}")
            {:error, e} = test_eval(py_nest.(kind, 513), 60_000)
            IO.puts("OUT513 #{kind} #{e.reason} #{e.message}")
            IO.puts("TOOL513 #{kind} #{inspect(agent.(deeper))}")
          end
          """,
        []
      )

    for kind <- ~w(list map tuple map_key) do
      assert beam_line(output, "IN #{kind}") == "true"
      assert beam_line(output, "OUT #{kind}") == "true"
      assert beam_line(output, "TOOL #{kind}") == "true"
      assert beam_line(output, "INPUT #{kind}") == "512"

      first =
        %{"list" => "[0][0]", "map" => ".k.k", "tuple" => "{0}{0}", "map_key" => " key{0}"}[
          kind
        ]

      assert beam_line(output, "IN513 #{kind}") =~
               ~r/^invalid_argument arguments#{Regex.escape(first)}.* nests deeper than 512 levels$/

      py_first = %{
        "list" => "[0][0]",
        "map" => ".k.k",
        "tuple" => "{0}{0}",
        "map_key" => " key{0}"
      }

      assert beam_line(output, "OUT513 #{kind}") =~
               ~r/^python_error result#{Regex.escape(py_first[kind])}.* nests deeper than 512 levels$/

      # The tool's answer was refused before Python saw it; ReAct shows the LM the error.
      assert beam_line(output, "TOOL513 #{kind}") =~
               ~r/returned a term Python cannot hold: result#{Regex.escape(first)}.* nests deeper than 512 levels/
    end
  end

  test "200 maps deep, each keyed by one shared 100 KB binary: memory in proportion to the term" do
    output =
      run_beam(
        start_source("[warm: false]") <>
          ~S"""
          peak = fn ->
            [_, kb] = Regex.run(~r/VmHWM:\s+(\d+) kB/, File.read!("/proc/self/status"))
            String.to_integer(kb) * 1024
          end

          key = String.duplicate("k", 100_000)
          term = Enum.reduce(1..200, "leaf", fn _, t -> %{key => t} end)
          # Everything else this BEAM will need, first: the round trip below is what grows.
          {:ok, _} = DSPex.Native.ping(%{key => [1]})
          before = peak.()
          {:ok, back} = DSPex.Native.ping(term, 60_000)
          IO.puts("EQUAL #{back == term}")
          IO.puts("GROWTH #{peak.() - before}")
          """,
        []
      )

    assert beam_line(output, "EQUAL") == "true"
    # The term is 20 MB written out (200 copies of the key); it is copied a handful of
    # times on its way through Python and back. Error paths copied at every level took
    # this BEAM past 2 GB.
    growth = String.to_integer(beam_line(output, "GROWTH"))
    assert growth < 10 * 200 * 100_000, "the peak grew by #{div(growth, 1_000_000)} MB"
  end

  test "big arguments never hold a normal scheduler: no long schedule while they are decoded" do
    output =
      run_beam(
        start_source("[warm: false]") <>
          ~S"""
          # Each would hold a scheduler well past the threshold if decoded there without a
          # budget (measured: 90 ms to seconds; the first two grew with the square of
          # their size). They live in persistent terms, off the caller's heap, so no
          # garbage collection of the caller counts as a long schedule.
          big = [
            key_and_list: %{String.duplicate("k", 320_000) => List.duplicate(1, 9000)},
            shared_keys: Enum.reduce(1..200, "leaf", fn _, t -> %{String.duplicate("k", 100_000) => t} end),
            string: String.duplicate("abcdefghij", 5_000_000),
            map: Map.new(1..1_000_000, &{&1, &1}),
            list: List.duplicate("x", 2_000_000) ++ [self()],
            tuple: List.to_tuple(List.duplicate(1, 2_000_000) ++ [self()]),
            deep: Enum.reduce(2..510, String.duplicate("x", 1_000_000), fn _, t -> [t] end)
          ]

          for {name, term} <- big, do: :persistent_term.put({:big, name}, term)
          s = Session.open!()
          parent = self()

          caller =
            spawn(fn ->
              receive do: (:go -> :ok)

              for {name, _} <- big do
                # A program that does not exist: the arguments are decoded, converted for
                # Python, and a small error comes back.
                inputs = %{value: :persistent_term.get({:big, name})}
                {:error, e} = Session.execute(s, "missing", inputs, timeout: 120_000)
                send(parent, {:result, name, e.reason})
              end

              send(parent, :done)
            end)

          :erlang.system_monitor(parent, [{:long_schedule, 100}])
          send(caller, :go)

          collect = fn collect, acc ->
            receive do
              :done -> Enum.reverse(acc)
              {:result, name, reason} -> collect.(collect, [{name, reason} | acc])
              {:monitor, ^caller, :long_schedule, info} -> collect.(collect, [{:long, info} | acc])
              {:monitor, _other, :long_schedule, _info} -> collect.(collect, acc)
            end
          end

          events = collect.(collect, [])
          :erlang.system_monitor(:undefined)
          IO.puts("RESULTS #{inspect(for {n, r} <- events, n != :long, do: {n, r})}")
          IO.puts("LONG #{inspect(for {:long, info} <- events, do: info)}")
          """,
        []
      )

    assert beam_line(output, "RESULTS") ==
             inspect(
               key_and_list: :not_found,
               shared_keys: :not_found,
               string: :not_found,
               map: :not_found,
               list: :invalid_argument,
               tuple: :invalid_argument,
               deep: :not_found
             )

    assert beam_line(output, "LONG") == "[]"
  end
end
