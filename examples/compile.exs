# Optimise a program against your own data and an Elixir metric, then save and reload it.
#   mix run examples/compile.exs
alias DSPex.Native.Session
:ok = DSPex.Native.await_ready()

lm =
  {:dummy,
   %{"2+2" => %{"answer" => "4"}, "3+3" => %{"answer" => "7"}, "5+5" => %{"answer" => "10"}}}

s = Session.open!(name: "optimise", lm: lm)
:ok = Session.create_program(s, "math", signature: "question -> answer")

trainset = [%{question: "2+2?", answer: "4"}, %{question: "3+3?", answer: "6"}]
metric = fn example, prediction -> example["answer"] == prediction["answer"] end

{:ok, result} =
  Session.compile(s, "math", trainset,
    optimizer: :bootstrap_few_shot,
    metric: metric,
    max_labeled_demos: 0
  )

IO.inspect(result, label: "compiled (only runs the metric accepted became demos)")

# Saved programs: export to JSON-encodable data, import into another session (or a later BEAM).
{:ok, saved} = Session.export_program(s, "math")
IO.inspect(Enum.map(saved["state"]["demos"], & &1["question"]), label: "demos saved")
other = Session.open!(name: "restored", lm: lm)
:ok = Session.import_program(other, "math", saved)
IO.inspect(Session.execute(other, "math", %{question: "5+5?"}), label: "restored program")
