defmodule DSPex.Native.StreamTest do
  # Session.stream/4 against a loopback OpenAI-compatible server that streams its answer in
  # server-sent events, one word at a time, with a delay between chunks.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers, only: [eventually: 2]
  alias DSPex.Native.{Error, Session}
  alias DSPex.Native.Test.OpenAIServer

  @moduletag :capture_log

  @answer "The capital of France is Paris, a city on the Seine with many bridges."

  defp server(fields, chunk_delay_ms) do
    {:ok, server} =
      OpenAIServer.start(
        chunk_delay_ms: chunk_delay_ms,
        reply: fn _ -> OpenAIServer.dspy_reply(fields) end
      )

    server
  end

  defp session(server, opts \\ []) do
    lm = {"openai/test-model", api_base: server.url, api_key: "sk-test", cache: false}
    s = Session.open!(lm: lm)
    :ok = Session.create_program(s, "qa", [signature: "question -> answer"] ++ opts)
    s
  end

  defp stamp(stream) do
    Enum.map(stream, fn item -> {System.monotonic_time(:millisecond), item} end)
  end

  test "chunks arrive before the answer is complete, and add up to the :done output" do
    s = session(server([{"answer", @answer}], 30))
    items = stamp(Session.stream(s, "qa", %{question: "Capital of France?"}, timeout: 60_000))

    chunks = for {t, {:chunk, "answer", text}} <- items, do: {t, text}

    assert [{_, {:done, %{"answer" => answer}}}] =
             Enum.filter(items, &match?({_, {:done, _}}, &1))

    assert length(chunks) >= 5
    assert chunks |> Enum.map(&elem(&1, 1)) |> Enum.join() |> String.trim() == answer
    # The first chunk came while the server was still sending (14 chunks 30 ms apart).
    {first, _} = hd(chunks)
    {done, _} = List.last(items)
    assert done - first >= 200
  end

  test "chain of thought streams its reasoning, then its answer" do
    fields = [{"reasoning", "Paris is the capital city."}, {"answer", @answer}]
    s = session(server(fields, 5), module: :chain_of_thought)
    items = Enum.to_list(Session.stream(s, "qa", %{question: "Capital?"}, timeout: 60_000))
    streamed = for {:chunk, field, _} <- items, uniq: true, do: field
    assert streamed == ["reasoning", "answer"]
    assert {:done, %{"reasoning" => _, "answer" => _}} = List.last(items)
  end

  test "taking two chunks cancels the job; nothing is left behind" do
    s = session(server([{"answer", @answer}], 50))

    assert [{:chunk, "answer", _}, {:chunk, "answer", _}] =
             Enum.take(Session.stream(s, "qa", %{question: "?"}, timeout: 60_000), 2)

    assert eventually(fn -> DSPex.Native.stats().queued == 0 end, 10_000)
    refute_receive _, 200
  end

  test "50 concurrent streams all complete, in flight together" do
    server = server([{"answer", @answer}], 10)

    results =
      1..50
      |> Task.async_stream(
        fn _ ->
          s = session(server)
          stream = Session.stream(s, "qa", %{question: "?"}, timeout: 120_000)
          [first | _] = items = Enum.map(stream, &{System.monotonic_time(), &1})
          {elem(first, 0), elem(List.last(items), 0), List.last(items) |> elem(1)}
        end,
        max_concurrency: 50,
        timeout: 180_000
      )
      |> Enum.map(fn {:ok, result} -> result end)

    assert Enum.all?(results, &match?({_, _, {:done, %{"answer" => _}}}, &1))
    # Streams overlapped: one got its first piece before an earlier one had its last.
    sorted = Enum.sort_by(results, &elem(&1, 0))

    {overlaps, _} =
      Enum.reduce(sorted, {0, nil}, fn {first, last, _}, {n, latest} ->
        {if(latest && first < latest, do: n + 1, else: n), max(latest || last, last)}
      end)

    assert overlaps > 0
  end

  test "DummyLM does not stream: only the outputs come" do
    s = Session.open!(lm: {:dummy, %{"" => %{"answer" => "Paris"}}})
    :ok = Session.create_program(s, "qa", signature: "question -> answer")

    assert Enum.to_list(Session.stream(s, "qa", %{question: "?"})) == [
             {:done, %{"answer" => "Paris"}}
           ]
  end

  test "errors raise DSPex.Native.Error when enumerated" do
    s = Session.open!(lm: {:dummy, %{"" => %{"answer" => "Paris"}}})

    assert_raise Error, ~r/no program/, fn ->
      Enum.to_list(Session.stream(s, "nope", %{q: "?"}))
    end

    assert_raise Error, ~r/fields/, fn -> Enum.to_list(Session.stream(s, "qa", %{}, bogus: 1)) end
  end

  test "an error after some chunks raises DSPex.Native.Error" do
    # The answer field never comes: reasoning streams, then parsing the answer fails.
    s =
      session(server([{"reasoning", "Thinking about capitals of Europe."}], 5),
        module: :chain_of_thought
      )

    parent = self()

    assert_raise Error, fn ->
      s
      |> Session.stream("qa", %{question: "?"}, timeout: 60_000)
      |> Enum.each(&send(parent, {:item, &1}))
    end

    assert_received {:item, {:chunk, "reasoning", _}}
    refute_received {:item, {:done, _}}
  end

  test "ReAct reports its tool calls as status messages" do
    answers = [
      %{
        "next_thought" => "look it up",
        "next_tool_name" => "weather",
        "next_tool_args" => %{"city" => "Paris"}
      },
      %{"next_thought" => "done", "next_tool_name" => "finish", "next_tool_args" => %{}},
      %{"reasoning" => "it said so", "answer" => "sunny"}
    ]

    s = Session.open!(lm: {:dummy, answers})

    weather = %{
      name: "weather",
      description: "Weather",
      args: [city: :string],
      fun: fn _ -> "sunny" end
    }

    :ok =
      Session.create_program(s, "agent",
        signature: "question -> answer",
        module: :react,
        tools: [weather]
      )

    items =
      Enum.to_list(Session.stream(s, "agent", %{question: "Weather in Paris?"}, status: true))

    statuses = for {:status, text} <- items, do: text
    assert Enum.any?(statuses, &(&1 =~ "weather"))
    assert {:done, %{"answer" => "sunny"}} = List.last(items)
  end
end
