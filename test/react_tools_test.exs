defmodule DSPex.Native.ReactToolsTest do
  # ReAct agents whose tools are Elixir functions, called back from the Python worker.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers, only: [mailbox: 0]
  alias DSPex.Native.Session

  # DummyLM plays the agent: call `weather` for `city`, then finish, then answer.
  defp agent_lm(city, answer) do
    {:dummy,
     [
       %{
         "next_thought" => "look it up",
         "next_tool_name" => "weather",
         "next_tool_args" => %{"city" => city}
       },
       %{"next_thought" => "done", "next_tool_name" => "finish", "next_tool_args" => %{}},
       %{"reasoning" => "from the tool", "answer" => answer}
     ]}
  end

  defp weather_tool(fun, extra \\ []) do
    Map.merge(
      %{
        name: "weather",
        description: "Current weather by city",
        args: [city: [type: :string, desc: "a city"]],
        fun: fun
      },
      Map.new(extra)
    )
  end

  defp agent(lm, tool, opts \\ []) do
    s = Session.open!(lm: lm)

    :ok =
      Session.create_program(
        s,
        "agent",
        [signature: "question -> answer", module: :react, tools: [tool], max_iters: 4] ++ opts
      )

    s
  end

  test "two sessions with a tool of the same name call different Elixir functions, at once" do
    parent = self()

    a =
      agent(
        agent_lm("Paris", "sunny"),
        weather_tool(fn %{"city" => c} ->
          send(parent, {:a, c, self()})
          "sunny in #{c}"
        end)
      )

    b =
      agent(
        agent_lm("Oslo", "snow"),
        weather_tool(fn %{"city" => c} ->
          send(parent, {:b, c, self()})
          %{"sky" => "snow", "city" => c}
        end)
      )

    [ra, rb] =
      [
        Task.async(fn -> Session.execute(a, "agent", %{question: "Paris?"}) end),
        Task.async(fn -> Session.execute(b, "agent", %{question: "Oslo?"}) end)
      ]
      |> Task.await_many(30_000)

    assert {:ok, %{"answer" => "sunny", "trajectory" => ta}} = ra
    assert {:ok, %{"answer" => "snow", "trajectory" => tb}} = rb
    assert inspect(ta) =~ "sunny in Paris"
    assert inspect(tb) =~ "snow"
    assert_received {:a, "Paris", pid_a}
    assert_received {:b, "Oslo", pid_b}
    # Each ran in a process of its own, not in the test or the caller.
    assert pid_a != self() and pid_b != self()
  end

  test "a tool that raises reaches DSPy as a tool error; the agent carries on" do
    s =
      agent(
        agent_lm("Atlantis", "unknown"),
        weather_tool(fn _ -> raise ArgumentError, "no such city" end)
      )

    assert {:ok, %{"answer" => "unknown", "trajectory" => t}} =
             Session.execute(s, "agent", %{question: "?"})

    assert inspect(t) =~ "no such city"
  end

  test "a tool that does not answer in time is a tool error, not a hang" do
    s =
      agent(agent_lm("Slowtown", "late"), weather_tool(fn _ -> Process.sleep(:infinity) end),
        tool_timeout: 200
      )

    assert {:ok, %{"answer" => "late", "trajectory" => t}} =
             Session.execute(s, "agent", %{question: "?"})

    assert inspect(t) =~ "did not answer within"
  end

  test "tools cannot be mistaken for each other: x's tool \"y/z\" and x/y's tool \"z\"" do
    parent = self()

    calls = fn tool ->
      [
        %{"next_thought" => "t", "next_tool_name" => tool, "next_tool_args" => %{}},
        %{"next_thought" => "d", "next_tool_name" => "finish", "next_tool_args" => %{}},
        %{"reasoning" => "r", "answer" => tool}
      ]
    end

    s = Session.open!(lm: {:dummy, calls.("y/z") ++ calls.("z")})

    for {program, name} <- [{"x", "y/z"}, {"x/y", "z"}] do
      fun = fn _ ->
        send(parent, {:ran, program})
        "from #{program}"
      end

      :ok =
        Session.create_program(s, program,
          signature: "question -> answer",
          module: :react,
          tools: [%{name: name, description: "a tool", args: [], fun: fun}],
          max_iters: 3
        )
    end

    assert {:ok, %{"trajectory" => %{"observation_0" => "from x"}}} =
             Session.execute(s, "x", %{question: "?"})

    assert {:ok, %{"trajectory" => %{"observation_0" => "from x/y"}}} =
             Session.execute(s, "x/y", %{question: "?"})

    assert_received {:ran, "x"}
    assert_received {:ran, "x/y"}
  end

  test "a caller that traps exits gets no message from the processes its tools ran in" do
    parent = self()

    s =
      agent(
        agent_lm("Nowhere", "gone"),
        weather_tool(fn _ ->
          send(parent, {:tool, self()})
          exit(:tool_gave_up)
        end)
      )

    caller =
      spawn(fn ->
        Process.flag(:trap_exit, true)
        result = Session.execute(s, "agent", %{question: "?"})
        receive do: (:check -> send(parent, {:caller, result, mailbox()}))
      end)

    assert_receive {:tool, tool}, 30_000
    ref = Process.monitor(tool)
    assert_receive {:DOWN, ^ref, :process, ^tool, _}, 10_000
    send(caller, :check)
    assert_receive {:caller, {:ok, %{"answer" => "gone", "trajectory" => t}}, []}, 30_000
    assert inspect(t) =~ "tool_gave_up"
  end

  test "bad tool specs are :invalid_argument" do
    s = Session.open!()

    for tools <- [
          nil,
          [],
          [%{name: "x"}],
          [%{name: "x", fun: fn -> :ok end}],
          [weather_tool(& &1, args: [a: :decimal])]
        ] do
      assert {:error, %DSPex.Native.Error{reason: :invalid_argument}} =
               Session.create_program(s, "a", signature: "q -> a", module: :react, tools: tools)
    end

    assert {:error, %DSPex.Native.Error{reason: :invalid_argument}} =
             Session.create_program(s, "p", signature: "q -> a", tools: [weather_tool(& &1)])
  end
end
