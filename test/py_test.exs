defmodule DSPex.Native.PyTest do
  # Python references owned by sessions: DSPy's classes reached through DSPex.Native.Py,
  # with Elixir functions as metrics and reward functions, refs confined to their session,
  # freed on collection and on close.
  # Not async: one test counts every live ref of the runtime.
  use ExUnit.Case, async: false

  import DSPex.Native.TestHelpers, only: [eventually: 2, settle: 0]
  alias DSPex.Native.{Error, Py, Ref, Session}

  @moduletag :capture_log

  defp session(answers \\ %{"" => %{"reasoning" => "r", "answer" => "4"}}),
    do: Session.open!(lm: {:dummy, answers})

  defp examples(s, pairs) do
    for {q, a} <- pairs do
      example = Py.call!(s, "dspy.Example", [], [question: q, answer: a], as: :ref)
      Py.method!(example, "with_inputs", ["question"], [], as: :ref)
    end
  end

  test "Evaluate with an Elixir metric on 4 threads scores every example" do
    s = session()
    program = Py.call!(s, "dspy.ChainOfThought", ["question -> answer"])

    devset =
      examples(s, for(n <- 1..6, do: {"#{n} + #{n}?", if(rem(n, 2) == 0, do: "4", else: "5")}))

    parent = self()

    metric = fn example, prediction ->
      send(parent, {:metric, example["question"]})
      example["answer"] == prediction["answer"]
    end

    evaluate =
      Py.call!(s, "dspy.Evaluate", [],
        devset: devset,
        metric: metric,
        num_threads: 4,
        display_progress: false
      )

    assert {:ok, %{"score" => score}} = Py.call(s, evaluate, [program])
    assert score == 50.0

    for n <- 1..6 do
      question = "#{n} + #{n}?"
      assert_received {:metric, ^question}
    end
  end

  test "BestOfN with an Elixir reward function" do
    s = session()
    module = Py.call!(s, "dspy.Predict", ["question -> answer"])
    reward = fn _args, prediction -> if prediction["answer"] == "4", do: 1.0, else: 0.0 end

    best =
      Py.call!(s, "dspy.BestOfN", [], module: module, N: 3, reward_fn: reward, threshold: 1.0)

    assert {:ok, %{"answer" => "4"}} = Py.call(s, best, [], question: "2 + 2?")
    :ok = Session.put_program(s, "best", best)
    assert {:ok, %{"answer" => "4"}} = Session.execute(s, "best", %{question: "2 + 2?"})
  end

  test "a ref of another session is refused, and a root outside importable too" do
    a = session()
    b = session()
    predict = Py.call!(a, "dspy.Predict", ["question -> answer"])
    assert {:error, %Error{reason: :invalid_argument, message: m}} = Py.call(b, predict, [])
    assert m =~ "belongs to session #{a.id}"

    assert {:error, %Error{reason: :invalid_argument, message: m}} =
             Py.call(a, "os.system", ["id"])

    assert m =~ ~s("os" is not importable) and m =~ "importable"
    assert {:error, %Error{reason: :invalid_argument}} = Py.call(a, "dspy.Example", [[1 | 2]])
  end

  @tag :tmp_dir
  test "a string signature given to DSPy through Py is parsed as data", %{tmp_dir: dir} do
    s = session()
    sentinel = Path.join(dir, "pwned")
    payload = ~s|q -> a: list["__import__('os').system('touch #{sentinel}')"]|

    assert {:error, %Error{reason: :python_error, message: m}} =
             Py.call(s, "dspy.Predict", [payload])

    assert m =~ "quoted type"
    refute File.exists?(sentinel)
  end

  test "refs are freed when collected and answer :closed after their session closes" do
    s = session()
    count = fn -> DSPex.Native.stats(gc: true).refs end
    settle()
    before = count.()
    held = for _ <- 1..20, do: Py.call!(s, "dspy.Predict", ["question -> answer"])
    assert count.() >= before + 20
    assert length(held) == 20
    # Dropped here: the next collection frees them.
    held = nil
    settle()
    assert eventually(fn -> count.() <= before end, 10_000)
    refute held

    kept = Py.call!(s, "dspy.Predict", ["question -> answer"])
    assert %Ref{type: "Predict"} = kept
    :ok = Session.close(s)
    assert {:error, %Error{reason: :closed}} = Py.attr(kept, "demos")
  end

  @tag timeout: 120_000
  test "config :dspex_native, importable: adds roots (in a BEAM of its own)" do
    output =
      DSPex.Native.TestHelpers.run_beam(
        DSPex.Native.TestHelpers.start_source(~s|[importable: ["dspy", "json"]]|) <>
          """
          s = Session.open!()
          IO.puts("DUMPS " <> inspect(DSPex.Native.Py.call(s, "json.dumps", [[1, 2]])))
          {:error, e} = DSPex.Native.Py.call(s, "os.getcwd")
          IO.puts("OS " <> e.message)
          """,
        []
      )

    assert DSPex.Native.TestHelpers.beam_line(output, "DUMPS") == ~s|{:ok, "[1, 2]"}|
    assert DSPex.Native.TestHelpers.beam_line(output, "OS") =~ "allowed: dspy, json"
  end
end
