defmodule DSPex.Native.SecurityIsolationTest do
  # Session code cannot change other sessions: dspy.configure(...) called by a session's
  # Python (a custom module's forward, load_module's top level) applies to that session only,
  # from any worker thread, for the rest of its life. Other sessions' adapters, callbacks and
  # LMs never change. Not async: were isolation broken, the global DSPy settings these tests
  # change would break every other test running at the same time.
  use ExUnit.Case, async: false

  import DSPex.Native.Test.Security
  alias DSPex.Native.Session
  alias DSPex.Native.Test.OpenAIServer

  @moduletag :capture_log

  @call 120_000

  # A custom module whose forward switches its session to DSPy's JSONAdapter and installs a
  # callback that records every LM call into `record`.
  defp configurer_source(record) do
    recorder_source(record) <>
      """

      class Configurer(dspy.Module):
          def __init__(self):
              super().__init__()
              self.predict = dspy.Predict("question -> answer")

          def forward(self, question):
              dspy.configure(adapter=dspy.JSONAdapter(), callbacks=[Recorder()])
              return self.predict(question=question)
      """
  end

  defp dummy_session(answer) do
    s = Session.open!(lm: {:dummy, %{"" => %{"answer" => answer}}})
    :ok = Session.create_program(s, "qa", signature: "question -> answer")
    s
  end

  defp real_session(server, key) do
    s = Session.open!(lm: lm(server, key))
    :ok = Session.create_program(s, "qa", signature: "question -> answer")
    s
  end

  # The chat request whose prompt contains `text`.
  defp request_with(server, text) do
    Enum.find(chat_requests(server), fn r ->
      Enum.any?(r.messages, &(is_binary(&1["content"]) and &1["content"] =~ text))
    end)
  end

  # Whether DSPy's JSONAdapter built the request (it asks for a JSON object; ChatAdapter
  # asks for [[ ## field ## ]] sections).
  defp json_mode?(request) do
    Map.has_key?(request.json, "response_format") or
      Enum.any?(request.messages, &(&1["content"] =~ "Respond with a JSON object"))
  end

  test "configure in one session's module leaves the other sessions' adapter and callbacks alone" do
    record = Path.join(sentinel_dir(), "a_calls.jsonl")
    good = start_server("a-answer")
    a = Session.open!(lm: lm(good, "sk-a"))
    assert {:ok, ["Configurer"]} = Session.load_module(a, "conf", configurer_source(record))
    :ok = Session.create_program(a, "conf", module: {:custom, "Configurer"})
    :ok = Session.create_program(a, "plain", signature: "question -> answer")

    b = dummy_session("b-ok")
    b_marker = marker("b-call")
    ask_b = fn n -> Session.execute(b, "qa", %{question: "#{b_marker} #{n}"}, timeout: @call) end

    # B runs while A configures, and again afterwards.
    during = Task.async(fn -> Enum.map(1..40, ask_b) end)

    for _ <- 1..3 do
      assert {:ok, %{"answer" => "a-answer"}} =
               Session.execute(a, "conf", %{question: marker("a-conf")}, timeout: @call)
    end

    after_ = Enum.map(41..80, ask_b)

    for result <- Task.await(during, @call) ++ after_ do
      # A JSONAdapter in B would fail to parse DummyLM's ChatAdapter-format answers.
      assert result == {:ok, %{"answer" => "b-ok"}}
    end

    # A's later calls, of either program, use its adapter and callbacks.
    for program <- ["conf", "plain"] do
      later = marker("a-later-#{program}")

      assert {:ok, %{"answer" => "a-answer"}} =
               Session.execute(a, program, %{question: later}, timeout: @call)

      assert Enum.any?(recorded(record), &(&1 =~ later)),
             "A's callback missed A's #{program} call"

      assert json_mode?(request_with(good, later)), "A's #{program} call did not use JSONAdapter"
    end

    refute Enum.any?(recorded(record), &(&1 =~ b_marker)), "A's callback saw B's calls"
  end

  test "12 concurrent calls that configure, from 12 processes, all succeed" do
    record = Path.join(sentinel_dir(), "calls.jsonl")
    good = start_server("concurrent")
    a = Session.open!(lm: lm(good, "sk-a"))
    {:ok, ["Configurer"]} = Session.load_module(a, "conf", configurer_source(record))
    :ok = Session.create_program(a, "conf", module: {:custom, "Configurer"})
    questions = for n <- 1..12, do: marker("q#{n}")

    results =
      questions
      |> Enum.map(fn q ->
        Task.async(fn -> Session.execute(a, "conf", %{question: q}, timeout: @call) end)
      end)
      |> Task.await_many(@call)

    assert results == List.duplicate({:ok, %{"answer" => "concurrent"}}, 12)

    # Another session on the same server is untouched by A's configuration.
    b = real_session(good, "sk-b")
    later = marker("b-after")

    assert {:ok, %{"answer" => "concurrent"}} =
             Session.execute(b, "qa", %{question: later}, timeout: @call)

    request = request_with(good, later)
    assert request.authorization == "Bearer sk-b"
    refute json_mode?(request)
    refute Enum.any?(recorded(record), &(&1 =~ later))
  end

  test "dspy.configure at the top level of load_module applies to that session only" do
    record = Path.join(sentinel_dir(), "e_calls.jsonl")
    evil = start_evil()
    good_e = start_server("e-answer")
    good_b = start_server("b-answer")

    # E switches itself to JSONAdapter with a recording callback.
    e = real_session(good_e, "sk-e")

    assert {:ok, []} =
             Session.load_module(
               e,
               "top",
               recorder_source(record) <>
                 """

                 dspy.configure(adapter=dspy.JSONAdapter(), callbacks=[Recorder()])
                 """
             )

    # F points its LM at the evil server, and never runs anything.
    f = Session.open!(lm: {:dummy, %{"" => %{"answer" => "f"}}})

    assert {:ok, []} =
             Session.load_module(f, "top", """
             import dspy
             dspy.configure(lm=dspy.LM("openai/test-model", api_base=#{inspect(evil.url)},
                                       api_key="sk-evil", num_retries=0))
             """)

    b = real_session(good_b, "sk-b")
    c = dummy_session("c-ok")
    b_marker = marker("b-call")
    e_marker = marker("e-call")

    assert {:ok, %{"answer" => "b-answer"}} =
             Session.execute(b, "qa", %{question: b_marker}, timeout: @call)

    assert {:ok, %{"answer" => "c-ok"}} = Session.execute(c, "qa", %{question: marker("c")})

    assert {:ok, %{"answer" => "e-answer"}} =
             Session.execute(e, "qa", %{question: e_marker}, timeout: @call)

    # B: its own server, its own key, ChatAdapter, not recorded.
    assert %{authorization: "Bearer sk-b"} = request = request_with(good_b, b_marker)
    refute json_mode?(request)
    refute Enum.any?(recorded(record), &(&1 =~ b_marker))

    # E: its settings apply to its own later calls.
    assert json_mode?(request_with(good_e, e_marker))
    assert Enum.any?(recorded(record), &(&1 =~ e_marker))
    assert OpenAIServer.requests(evil) == []
  end
end
