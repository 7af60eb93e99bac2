defmodule DSPex.Native.WarmUpTest do
  # Python is ready before litellm is imported (seconds, in the background once the pool
  # is quiet): LM calls made before or during that import wait for it instead of failing on
  # a half-imported module. In a BEAM of its own, so that litellm is not imported yet when
  # the calls start.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers

  @moduletag timeout: 180_000

  test "LM calls made as soon as the runtime is ready, during the litellm warm-up, all succeed" do
    output =
      run_beam(
        ~S"""
        alias DSPex.Native.Session
        alias DSPex.Native.Test.OpenAIServer

        {:ok, server} =
          OpenAIServer.start(reply: fn _ -> OpenAIServer.dspy_reply(%{"answer" => "fine"}) end)

        {:ok, _} = Application.ensure_all_started(:dspex_native)
        :ok = DSPex.Native.await_ready(60_000)
        # DSPy's own engine (lm15) does not need litellm; this one does.
        lm =
          {"openai/gpt-4o-mini",
           api_base: server.url, api_key: "k", cache: false, num_retries: 0, engine: "litellm"}

        results =
          for n <- 1..8 do
            Task.async(fn ->
              s = Session.open!(lm: lm)
              :ok = Session.create_program(s, "qa", signature: "question -> answer")
              Session.execute(s, "qa", %{question: "call #{n}"}, timeout: 120_000)
            end)
          end
          |> Task.await_many(150_000)

        IO.puts("RESULTS #{inspect(Enum.frequencies(results))}")
        """,
        []
      )

    assert beam_line(output, "RESULTS") == ~s(%{{:ok, %{"answer" => "fine"}} => 8})
  end
end
