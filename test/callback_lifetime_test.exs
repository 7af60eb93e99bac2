defmodule DSPex.Native.CallbackLifetimeTest do
  # Elixir tools and metrics live no longer than what uses them: a tool's process goes
  # when Python stops waiting for it, when its call ends, or when its caller dies; a
  # program's functions go when the program is replaced, deleted, reset or recompiled.
  # Each runs in a BEAM of its own, whose process count and memory nothing else moves.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers

  @moduletag timeout: 300_000

  # `agent.(tools, opts)`: a session with a ReAct program "agent" whose DummyLM calls the
  # tool "t" once, then finishes.
  @agent ~S"""
  agent_lm =
    {:dummy,
     [
       %{"next_thought" => "call it", "next_tool_name" => "t", "next_tool_args" => %{}},
       %{"next_thought" => "done", "next_tool_name" => "finish", "next_tool_args" => %{}},
       %{"reasoning" => "r", "answer" => "a"}
     ]}

  tool = fn fun -> %{name: "t", description: "a tool", args: [], fun: fun} end

  agent = fn fun, opts ->
    s = Session.open!(lm: agent_lm)

    :ok =
      Session.create_program(
        s,
        "agent",
        [signature: "q -> answer", module: :react, tools: [tool.(fun)], max_iters: 3] ++ opts
      )

    s
  end
  """

  test "30 tools that never return: each process goes with its call, and the count is back to its baseline" do
    output =
      run_beam(
        start_source("[warm: false]") <>
          @agent <>
          ~S"""
          parent = self()
          # Tools that say they started (to `whom`), then never return.
          hang_to = fn whom -> fn _ -> send(whom, {:tool, self()}); Process.sleep(:infinity) end end
          hang = hang_to.(parent)
          # One call first, so the count includes what the first call starts for good.
          {:ok, _} = Session.execute(agent.(fn _ -> "ok" end, []), "agent", %{q: "?"})
          :erlang.garbage_collect()
          baseline = length(Process.list())

          calls =
            for n <- 1..30 do
              case rem(n, 3) do
                # Python stops waiting for the tool (tool_timeout); the call goes on.
                0 ->
                  s = agent.(hang, tool_timeout: 200)
                  Task.async(fn -> Session.execute(s, "agent", %{q: "?"}, timeout: :infinity) end)

                # The call times out while the tool runs. On a busy machine the deadline may
                # pass before the tool starts: then try again with more time.
                1 ->
                  Task.async(fn ->
                    while_running(
                      fn timeout ->
                        s = agent.(hang_to.(self()), tool_timeout: 600_000)
                        result = Session.execute(s, "agent", %{q: "?"}, timeout: timeout)

                        receive do
                          {:tool, pid} -> send(parent, {:tool, pid}) && result
                        after
                          0 -> nil
                        end
                      end,
                      [1_000, 5_000, 30_000]
                    )
                  end)

                # The caller is killed while the tool runs.
                2 ->
                  s = agent.(hang, tool_timeout: 600_000)
                  pid = spawn(fn -> Session.execute(s, "agent", %{q: "?"}, timeout: :infinity) end)
                  {:killed_later, pid}
              end
            end

          tools = for _ <- 1..30, do: receive(do: ({:tool, pid} -> pid))

          refs = Enum.map(tools, &Process.monitor/1)

          for {:killed_later, pid} <- calls, do: Process.exit(pid, :kill)
          results = for %Task{} = t <- calls, do: Task.await(t, :infinity)

          IO.puts("RESULTS #{inspect(Enum.frequencies_by(results, fn
            {:ok, %{"answer" => "a"}} -> :answered
            {:error, e} -> e.reason
          end))}")

          # Each tool process ends without any help from here.
          for ref <- refs, do: receive(do: ({:DOWN, ^ref, :process, _, _} -> :ok))
          IO.puts("TOOLS_DOWN #{length(refs)}")
          :erlang.garbage_collect()
          back = eventually(fn -> length(Process.list()) <= baseline end, 30_000)
          IO.puts("BACK #{back} #{length(Process.list())} #{baseline}")
          """,
        []
      )

    assert beam_line(output, "RESULTS") == "%{answered: 10, timeout: 10}"
    assert beam_line(output, "TOOLS_DOWN") == "30"
    assert beam_line(output, "BACK") =~ ~r/^true /
  end

  test "functions go with their program: 600 replacements, deletes, resets, recompiles and metrics leave memory flat" do
    output =
      run_beam(
        start_source("[warm: false]") <>
          @agent <>
          ~S"""
          # Each function captures a 20,000-element list: about 320 KB kept per copy.
          big = Enum.to_list(1..20_000)
          s = Session.open!(lm: agent_lm)

          react = fn id, n ->
            :ok =
              Session.create_program(s, id,
                signature: "q -> answer",
                module: :react,
                tools: [tool.(fn _ -> length(big) + n end)],
                replace: true
              )
          end

          # Memory after every process's garbage and Python's cycles are collected.
          memory = fn ->
            for pid <- Process.list(), do: :erlang.garbage_collect(pid)
            DSPex.Native.stats(gc: true)
            :erlang.memory(:total)
          end

          for n <- 1..20, do: react.("agent", n)
          before = memory.()

          for n <- 1..600, do: react.("agent", n)
          IO.puts("REPLACED #{memory.() - before}")

          for n <- 1..300, do: react.("p#{n}", n)
          IO.puts("HELD #{memory.() - before}")
          :ok = Session.reset(s)
          IO.puts("RESET #{memory.() - before}")

          for n <- 1..300, do: react.("p#{n}", n)
          for n <- 1..300, do: :ok = Session.delete_program(s, "p#{n}")
          IO.puts("DELETED #{memory.() - before}")

          # A compiled program stored over a ReAct program replaces it, tools and all.
          :ok = Session.create_program(s, "qa", signature: "question -> answer")
          for n <- 1..300, do: react.("p#{n}", n)
          trainset = [%{question: "2+2?", answer: "4"}]
          for n <- 1..300, do: {:ok, _} = Session.compile(s, "qa", trainset, as: "p#{n}")
          IO.puts("RECOMPILED #{memory.() - before}")

          # A metric lives as long as its compile.
          metric = fn _example, _prediction -> length(big) > 0 end
          m = Session.open!(lm: {:dummy, %{"" => %{"answer" => "4"}}})
          :ok = Session.create_program(m, "qa", signature: "question -> answer")

          for _ <- 1..200 do
            {:ok, _} =
              Session.compile(m, "qa", trainset,
                optimizer: :bootstrap_few_shot,
                metric: metric,
                max_labeled_demos: 0,
                as: "qa2"
              )
          end

          IO.puts("METRICS #{memory.() - before}")
          # The last program's tool still answers.
          react.("agent", 7)
          {:ok, %{"trajectory" => t}} = Session.execute(s, "agent", %{q: "?"})
          IO.puts("ANSWER #{inspect(t["observation_0"])}")
          """,
        []
      )

    # One copy is 320 KB: 600 leaked copies would be 190 MB, 300 would be 96 MB.
    flat = 20_000_000
    assert String.to_integer(beam_line(output, "HELD")) > 60_000_000, "not held: #{output}"

    for label <- ~w(REPLACED RESET DELETED RECOMPILED METRICS) do
      grown = String.to_integer(beam_line(output, label))
      assert grown < flat, "#{label}: BEAM memory grew by #{div(grown, 1_000_000)} MB"
    end

    assert beam_line(output, "ANSWER") == "20007"
  end
end
