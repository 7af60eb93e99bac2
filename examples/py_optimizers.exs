# All of DSPy through DSPex.Native.Py: Evaluate with an Elixir metric on 4 threads,
# MIPROv2 compiling a program, the result installed as a session program and exported.
#   mix run examples/py_optimizers.exs
alias DSPex.Native.{Py, Session}
:ok = DSPex.Native.await_ready()

# DummyLM answers every prompt with these fields (MIPROv2 asks for its own fields too).
# MIPROv2 logs its progress (Logger, info level) and draws progress bars on stderr.
answers = %{
  "" => %{
    "reasoning" => "add the numbers",
    "answer" => "4",
    "proposed_instruction" => "Answer with a single number.",
    "program_description" => "adds two numbers",
    "module_description" => "adds two numbers",
    "observations" => "questions about sums",
    "summary" => "sums of small numbers"
  }
}

s = Session.open!(name: "optimisers", lm: {:dummy, answers})
program = Py.call!(s, "dspy.ChainOfThought", ["question -> answer"])
IO.inspect(program, label: "a Python object held by the session")

examples =
  for {q, a} <- [
        {"2+2?", "4"},
        {"1+3?", "4"},
        {"3+3?", "6"},
        {"0+4?", "4"},
        {"4+0?", "4"},
        {"2+3?", "5"}
      ] do
    example = Py.call!(s, "dspy.Example", [], [question: q, answer: a], as: :ref)
    Py.method!(example, "with_inputs", ["question"], [], as: :ref)
  end

metric = fn example, prediction ->
  if example["answer"] == prediction["answer"], do: 1.0, else: 0.0
end

evaluate =
  Py.call!(s, "dspy.Evaluate", [],
    devset: examples,
    metric: metric,
    num_threads: 4,
    display_progress: false
  )

IO.inspect(Py.call!(s, evaluate, [program])["score"], label: "Evaluate score (%)")

mipro = Py.call!(s, "dspy.MIPROv2", [], metric: metric, auto: "light", num_threads: 2)
compiled = Py.method!(mipro, "compile", [program], trainset: examples)
:ok = Session.put_program(s, "adder", compiled)
IO.inspect(Session.execute(s, "adder", %{question: "1+1?"}), label: "the compiled program")

{:ok, saved} = Session.export_program(s, "adder")
IO.inspect(saved["state"]["predict"]["signature"]["instructions"], label: "exported instructions")
