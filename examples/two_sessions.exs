# Two sessions, one program ID, run at the same time: each answers with its own LM.
#
#   make demo                                        # offline, DSPy's DummyLM
#   DSPEX_LM=openai/gpt-4o-mini OPENAI_API_KEY=... make demo   # a real model
alias DSPex.Native.Session

question = "What is the capital of France? Answer in one word."

lm_for = fn who ->
  case System.get_env("DSPEX_LM") do
    model when model in [nil, ""] -> {:dummy, [%{"answer" => "Paris (from #{who}'s DummyLM)"}]}
    model -> {model, cache: false}
  end
end

:ok = DSPex.Native.await_ready()

sessions =
  for who <- ["alice", "bob"] do
    session = Session.open!(name: who, lm: lm_for.(who))
    # The same ID in both sessions: no "Program already exists".
    :ok = Session.create_program(session, "prog_1", signature: "question -> answer")
    session
  end

IO.puts("Two sessions, each with its own \"prog_1\":")

sessions
|> Task.async_stream(fn s -> {s, Session.execute(s, "prog_1", %{question: question})} end,
  timeout: 120_000
)
|> Enum.each(fn {:ok, {session, result}} ->
  case result do
    {:ok, %{"answer" => answer}} -> IO.puts("  #{inspect(session)} answered: #{answer}")
    {:error, error} -> IO.puts("  #{inspect(session)} failed: #{Exception.message(error)}")
  end
end)

IO.puts("stats: #{inspect(Map.take(DSPex.Native.stats(), [:sessions, :programs, :workers]))}")
