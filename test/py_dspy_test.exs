defmodule DSPex.Native.PyDspyTest do
  # DSPy's modules and optimizers that have no option of their own, reached through
  # DSPex.Native.Py against the real DSPy: DummyLM, or the loopback OpenAI-compatible server.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO
  alias DSPex.Native.{Py, Session}
  alias DSPex.Native.Test.OpenAIServer

  @moduletag :capture_log

  @answers %{
    "" => %{
      "reasoning" => "r",
      "answer" => "4",
      "rationale" => "r",
      "proposed_instruction" => "Answer with a number.",
      "program_description" => "adds numbers",
      "module_description" => "adds numbers",
      "new_instruction" => "Be exact.",
      "discussion" => "fine",
      "advice" => "{}"
    }
  }

  defp session, do: Session.open!(lm: {:dummy, @answers})

  defp trainset(s, n) do
    for i <- 1..n do
      example =
        Py.call!(s, "dspy.Example", [], [question: "#{i} + #{4 - i}?", answer: "4"], as: :ref)

      Py.method!(example, "with_inputs", ["question"], [], as: :ref)
    end
  end

  test "MIPROv2 (auto: light) compiles with an Elixir metric; the result is a program that exports" do
    s = session()
    program = Py.call!(s, "dspy.ChainOfThought", ["question -> answer"])

    metric = fn example, prediction ->
      if example["answer"] == prediction["answer"], do: 1.0, else: 0.0
    end

    mipro = Py.call!(s, "dspy.MIPROv2", [], metric: metric, auto: "light", num_threads: 2)

    {compiled, _output} =
      with_io(:stderr, fn ->
        with_io(fn -> Py.method!(mipro, "compile", [program], trainset: trainset(s, 8)) end)
      end)
      |> then(fn {{value, _}, err} -> {value, err} end)

    assert compiled.type == "ChainOfThought"
    :ok = Session.put_program(s, "mipro", compiled)
    assert {:ok, %{"answer" => "4"}} = Session.execute(s, "mipro", %{question: "2 + 2?"})

    {:ok, exported} = Session.export_program(s, "mipro")
    other = session()
    :ok = Session.import_program(other, "mipro", exported)
    assert {:ok, %{"answer" => "4"}} = Session.execute(other, "mipro", %{question: "2 + 2?"})
  end

  test "GEPA compiles with an Elixir metric and a DummyLM reflection model" do
    s = session()
    program = Py.call!(s, "dspy.ChainOfThought", ["question -> answer"])
    reflection = Py.call!(s, "dspy.utils.DummyLM", [%{"" => %{"new_instruction" => "Be exact."}}])

    metric = fn gold, prediction ->
      if gold["answer"] == prediction["answer"], do: 1.0, else: 0.0
    end

    gepa =
      Py.call!(s, "dspy.GEPA", [],
        metric: metric,
        max_metric_calls: 20,
        reflection_lm: reflection,
        num_threads: 2
      )

    [a, b, c, d, e, f] = trainset(s, 6)

    {{compiled, _out}, _err} =
      with_io(:stderr, fn ->
        with_io(fn ->
          Py.method!(gepa, "compile", [program], trainset: [a, b, c, d], valset: [e, f])
        end)
      end)

    :ok = Session.put_program(s, "gepa", compiled)
    assert {:ok, %{"answer" => "4"}} = Session.execute(s, "gepa", %{question: "2 + 2?"})
  end

  test "Refine, Parallel and MultiChainComparison" do
    s = session()
    predict = Py.call!(s, "dspy.Predict", ["question -> answer"])
    parent = self()

    reward = fn _args, prediction ->
      send(parent, {:reward, prediction["answer"]})
      1.0
    end

    refine =
      Py.call!(s, "dspy.Refine", [], module: predict, N: 2, reward_fn: reward, threshold: 1.0)

    assert {:ok, %{"answer" => "4"}} = Py.call(s, refine, [], question: "2 + 2?")
    assert_received {:reward, "4"}

    parallel = Py.call!(s, "dspy.Parallel", [], num_threads: 2, disable_progress_bar: true)
    pairs = for q <- ["1 + 3?", "2 + 2?", "0 + 4?"], do: {predict, %{"question" => q}}

    assert {:ok, results} = Py.call(s, parallel, [pairs])
    assert Enum.map(results, & &1["answer"]) == ["4", "4", "4"]

    mcc = Py.call!(s, "dspy.MultiChainComparison", ["question -> answer"], M: 2)
    completions = [%{"reasoning" => "a", "answer" => "4"}, %{"reasoning" => "b", "answer" => "5"}]
    assert {:ok, %{"answer" => "4"}} = Py.call(s, mcc, [completions], question: "2 + 2?")
  end

  test "a JSONAdapter program and an image input reach the server as such" do
    {:ok, server} = OpenAIServer.start()
    lm = {"openai/test-model", api_base: server.url, api_key: "sk-test", cache: false}
    s = Session.open!(lm: lm, adapter: :json)
    :ok = Session.create_program(s, "look", signature: "photo: dspy.Image, question -> answer")
    photo = {:image, <<137, 80, 78, 71, 13, 10, 26, 10>>, "image/png"}

    assert {:ok, %{"answer" => _}} =
             Session.execute(s, "look", %{photo: photo, question: "What is it?"}, timeout: 120_000)

    [request] = OpenAIServer.requests(server)
    content = List.last(request.messages)["content"]

    assert Enum.any?(
             content,
             &match?(
               %{"type" => "image_url", "image_url" => %{"url" => "data:image/png;base64," <> _}},
               &1
             )
           )

    assert Enum.any?(content, &(is_map(&1) and &1["type"] == "text" and &1["text"] =~ "JSON"))
  end

  test "dspy.inspect_history shows the session's own calls" do
    s = session()
    :ok = Session.create_program(s, "qa", signature: "question -> answer")
    {:ok, _} = Session.execute(s, "qa", %{question: "What is two plus two?"})
    printed = capture_io(fn -> Py.call!(s, "dspy.inspect_history", [1]) end)
    assert printed =~ "What is two plus two?"
  end

  test "dspy.Tool inputs take the tool maps ReAct takes" do
    s = session()

    :ok =
      Session.create_program(s, "pick", signature: "question, tools: list[dspy.Tool] -> answer")

    weather = %{
      name: "weather",
      description: "Weather in a city",
      args: [city: :string],
      fun: fn _ -> "sunny" end
    }

    assert {:ok, %{"answer" => "4"}} =
             Session.execute(s, "pick", %{question: "?", tools: [weather]})

    {:ok, [call]} = Session.history(s, 1)
    assert inspect(call.messages) =~ "Weather in a city"

    assert {:error, %DSPex.Native.Error{reason: :invalid_argument}} =
             Session.execute(s, "pick", %{question: "?", tools: [%{name: "x"}]})
  end
end
