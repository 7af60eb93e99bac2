# A ReAct agent whose tool is an Elixir function, called back from Python.
#   mix run examples/react_tools.exs
alias DSPex.Native.Session
:ok = DSPex.Native.await_ready()

weather = %{
  name: "weather",
  description: "Current temperature in a city, in °C",
  args: [city: [type: :string, desc: "a city name"]],
  fun: fn %{"city" => city} -> %{"city" => city, "celsius" => 21} end
}

# DummyLM plays the agent (offline): call the tool, finish, answer.
lm =
  {:dummy,
   [
     %{
       "next_thought" => "I should look it up",
       "next_tool_name" => "weather",
       "next_tool_args" => %{"city" => "Paris"}
     },
     %{"next_thought" => "I know enough", "next_tool_name" => "finish", "next_tool_args" => %{}},
     %{"reasoning" => "the tool said 21 °C", "answer" => "It is 21 °C in Paris."}
   ]}

s = Session.open!(name: "agent", lm: lm)

:ok =
  Session.create_program(s, "agent",
    signature: "question -> answer",
    module: :react,
    tools: [weather],
    max_iters: 5
  )

{:ok, out} = Session.execute(s, "agent", %{question: "How warm is it in Paris?"})
IO.puts("answer: #{out["answer"]}")
IO.inspect(out["trajectory"], label: "trajectory")
