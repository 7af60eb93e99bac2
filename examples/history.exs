# What the LM was asked, per session, and the tokens it reported.
#   mix run examples/history.exs
alias DSPex.Native.Session
:ok = DSPex.Native.await_ready()

s = Session.open!(name: "history", lm: {:dummy, [%{"answer" => "Paris"}, %{"answer" => "Rome"}]})
:ok = Session.create_program(s, "qa", signature: "question -> answer")

for q <- ["Capital of France?", "Capital of Italy?"],
    do: {:ok, _} = Session.execute(s, "qa", %{question: q})

{:ok, calls} = Session.history(s, 2)

for call <- calls do
  asked = call.messages |> List.last() |> Map.get("content") |> String.slice(0, 80)
  IO.puts("#{call.model}: asked #{inspect(asked)}… → #{inspect(call.outputs)}")
end

{:ok, info} = Session.info(s)
IO.inspect(info.usage, label: "token usage by model")
