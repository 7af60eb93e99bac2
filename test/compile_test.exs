defmodule DSPex.Native.CompileTest do
  # Optimisation against the user's own data and metric, offline with DummyLM.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO, only: [with_io: 1, with_io: 2]
  alias DSPex.Native.{Error, Session}

  # DSPy shows its progress while it compiles (stdout and stderr): caught, not shown.
  defp quietly(fun) do
    {{result, _out}, _err} = with_io(:stderr, fn -> with_io(fun) end)
    result
  end

  # Answers 2+2 right and 3+3 wrong, so a metric can tell runs apart.
  defp session do
    s = Session.open!(lm: {:dummy, %{"2+2" => %{"answer" => "4"}, "3+3" => %{"answer" => "7"}}})

    :ok = Session.create_program(s, "qa", signature: "question -> answer")
    s
  end

  @trainset [%{question: "2+2?", answer: "4"}, %{"question" => "3+3?", "answer" => "6"}]

  defp demo_questions(s, id) do
    {:ok, exported} = Session.export_program(s, id)
    Enum.map(exported["state"]["demos"], & &1["question"])
  end

  test "labeled few-shot stores the compiled program under :as; the original stays" do
    s = session()
    assert {:ok, %{id: "qa_fs", demos: 2}} = Session.compile(s, "qa", @trainset, as: "qa_fs")
    assert {:ok, ["qa", "qa_fs"]} = Session.list_programs(s)
    assert Enum.sort(demo_questions(s, "qa_fs")) == ["2+2?", "3+3?"]
    assert demo_questions(s, "qa") == []
  end

  test "bootstrap few-shot with an Elixir metric keeps the runs it accepts" do
    s = session()
    parent = self()

    metric = fn example, prediction ->
      send(parent, {:metric, example["question"], prediction["answer"], self()})
      example["answer"] == prediction["answer"]
    end

    assert {:ok, %{id: "qa", demos: 1}} =
             quietly(fn ->
               Session.compile(s, "qa", @trainset,
                 optimizer: :bootstrap_few_shot,
                 metric: metric,
                 max_labeled_demos: 0
               )
             end)

    assert_received {:metric, "2+2?", "4", pid}
    assert_received {:metric, "3+3?", "7", _}
    assert pid != self()
    assert demo_questions(s, "qa") == ["2+2?"]
  end

  test "a metric that raises is reported by DSPy, never a crash" do
    s = session()
    metric = fn _, _ -> raise "metric exploded" end

    result =
      quietly(fn ->
        Session.compile(s, "qa", @trainset,
          optimizer: :bootstrap_few_shot,
          metric: metric,
          max_errors: 1
        )
      end)

    assert {:error, %Error{reason: :python_error, message: m}} = result
    assert m =~ "metric exploded"
    # The session still works.
    assert {:ok, %{"answer" => "4"}} = Session.execute(s, "qa", %{question: "2+2?"})
  end

  test "bad compile arguments are clear errors" do
    s = session()
    assert {:error, %Error{reason: :invalid_argument}} = Session.compile(s, "qa", [], [])

    assert {:error, %Error{reason: :invalid_argument}} =
             Session.compile(s, "qa", [%{answer: "4"}])

    assert {:error, %Error{reason: :invalid_argument}} =
             Session.compile(s, "qa", @trainset, optimizer: :mipro)

    assert {:error, %Error{reason: :invalid_argument}} =
             Session.compile(s, "qa", @trainset, optimizer: :bootstrap_few_shot)

    assert {:error, %Error{reason: :not_found}} = Session.compile(s, "nope", @trainset)
  end
end
