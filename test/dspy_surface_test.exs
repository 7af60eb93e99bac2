defmodule DSPex.Native.DSPySurfaceTest do
  # Typed signatures, custom modules, history and usage: real DSPy, per session.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers
  alias DSPex.Native.{Error, Session}
  alias DSPex.Native.Test.OpenAIServer

  test "typed output fields come back as the matching Elixir terms" do
    s =
      Session.open!(
        lm:
          dummy(%{
            "count" => "3",
            "score" => "0.5",
            "ok" => "true",
            "tags" => ~s(["red", "blue"]),
            "mood" => "sad",
            "meta" => ~s({"k": 1})
          })
      )

    :ok =
      Session.create_program(s, "typed",
        signature: %{
          inputs: [text: [type: :string, desc: "some text"]],
          outputs: [
            count: :integer,
            score: :float,
            ok: :boolean,
            tags: {:list, :string},
            mood: [type: {:literal, [:happy, :sad]}, desc: "the mood"],
            meta: :map
          ],
          instructions: "Describe the text."
        }
      )

    assert {:ok, out} = Session.execute(s, "typed", %{text: "hello"})

    assert out == %{
             "count" => 3,
             "score" => 0.5,
             "ok" => true,
             "tags" => ["red", "blue"],
             "mood" => "sad",
             "meta" => %{"k" => 1}
           }
  end

  test "a field of unknown type is :invalid_signature" do
    s = Session.open!()

    for type <- [:decimal, {:list, :nope}, {:literal, []}, {:tuple, :string}] do
      assert {:error, %Error{reason: :invalid_signature}} =
               Session.create_program(s, "t", signature: %{inputs: [:q], outputs: [a: type]})
    end
  end

  @shout """
  import dspy

  class Shout(dspy.Module):
      def __init__(self):
          super().__init__()
          self.predict = dspy.Predict("text -> loud")

      def forward(self, text):
          return dspy.Prediction(loud=self.predict(text=text).loud.upper())
  """

  test "custom modules are loaded per session; another session never sees them" do
    a = Session.open!(lm: dummy(%{"loud" => "hey"}))
    b = Session.open!(lm: dummy(%{"loud" => "hey"}))
    assert {:ok, ["Shout"]} = Session.load_module(a, "shout", @shout)
    assert :ok = Session.create_program(a, "s", module: {:custom, "Shout"})
    assert {:ok, %{"loud" => "HEY"}} = Session.execute(a, "s", %{text: "hi"})

    assert {:error, %Error{reason: :not_found, message: m}} =
             Session.create_program(b, "s", module: {:custom, "Shout"})

    assert m =~ "Shout"

    assert {:error, %Error{reason: :python_error, python_type: "SyntaxError"}} =
             Session.load_module(a, "broken", "def nope(:\n")
  end

  test "history shows each session only its own LM calls, also when they run at once" do
    sessions =
      for who <- ~w(alice bob) do
        s = Session.open!(name: who, lm: dummy(%{"answer" => "for #{who}"}))
        :ok = Session.create_program(s, "qa", signature: "question -> answer")
        {who, s}
      end

    sessions
    |> Enum.flat_map(fn {who, s} ->
      for n <- 1..5,
          do: Task.async(fn -> Session.execute(s, "qa", %{question: "#{who} asks #{n}"}) end)
    end)
    |> Task.await_many(30_000)

    for {who, s} <- sessions do
      assert {:ok, calls} = Session.history(s, 50)
      assert length(calls) == 5
      text = inspect(Enum.map(calls, & &1.messages))
      other = if who == "alice", do: "bob", else: "alice"
      assert text =~ "#{who} asks"
      refute text =~ "#{other} asks"
      assert Enum.all?(calls, &(&1.outputs |> inspect() =~ "for #{who}"))
    end

    {_, alice} = hd(sessions)
    Session.close(alice)
    assert {:error, %Error{reason: :closed}} = Session.history(alice, 5)
    assert {:error, %Error{reason: :invalid_argument}} = Session.history(alice, -1)
  end

  test "info totals the token usage the LM reported" do
    {:ok, server} =
      OpenAIServer.start(reply: fn _ -> OpenAIServer.dspy_reply(%{"answer" => "ok"}) end)

    lm = {"openai/gpt-4o-mini", api_base: server.url, api_key: "k", cache: false, num_retries: 0}
    s = Session.open!(lm: lm)
    :ok = Session.create_program(s, "qa", signature: "question -> answer")

    for q <- ~w(one two),
        do: {:ok, _} = Session.execute(s, "qa", %{question: q}, timeout: 120_000)

    {:ok, [first, second]} = Session.history(s, 2)
    assert {:ok, %{usage: usage}} = Session.info(s)
    assert [{model, totals}] = Map.to_list(usage)
    assert model =~ "gpt-4o-mini"
    assert totals["total_tokens"] > 0

    assert totals["total_tokens"] ==
             first.usage["total_tokens"] + second.usage["total_tokens"]
  end

  test "export from one session, import into another: same demos, same answers" do
    lm = dummy(%{"reasoning" => "r", "answer" => "same"})
    a = Session.open!(lm: lm)

    :ok =
      Session.create_program(a, "qa",
        signature: %{
          inputs: [question: "a question"],
          outputs: [:answer],
          instructions: "Be terse."
        },
        module: :chain_of_thought
      )

    {:ok, exported} = Session.export_program(a, "qa")
    demos = [%{"question" => "1+1?", "reasoning" => "add", "answer" => "2", "augmented" => true}]
    exported = put_in(exported, ["state", "predict", "demos"], demos)

    b = Session.open!(lm: lm)
    assert :ok = Session.import_program(b, "copy", exported)
    assert {:ok, again} = Session.export_program(b, "copy")
    assert again["state"]["predict"]["demos"] == demos
    assert again["state"]["predict"]["signature"]["instructions"] == "Be terse."
    assert {:ok, %{"answer" => "same"}} = Session.execute(b, "copy", %{question: "?"})
    # The demos reach the LM: they are in the prompt.
    {:ok, [call]} = Session.history(b, 1)
    assert inspect(call.messages) =~ "1+1?"

    assert {:error, %Error{reason: :already_exists}} = Session.import_program(b, "copy", exported)

    assert {:error, %Error{reason: :invalid_argument}} =
             Session.import_program(b, "x", %{"format" => "?"})

    assert {:error, %Error{reason: :not_found}} = Session.export_program(b, "missing")
  end
end
