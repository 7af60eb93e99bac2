defmodule DSPex.Native.TestingGuideTest do
  # The README's "Testing an application that uses it" patterns, as a dependent writes them.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO
  alias DSPex.Native.{Error, Session}

  setup do
    session = Session.open!(lm: {:dummy, [%{"answer" => "Paris"}, %{"answer" => "Lyon"}]})
    :ok = Session.create_program(session, "qa", signature: "question -> answer")
    %{session: session}
  end

  test "a list answers in order, and a call past its end is an error", %{session: s} do
    assert {:ok, %{"answer" => "Paris"}} = Session.execute(s, "qa", %{question: "France?"})
    assert {:ok, %{"answer" => "Lyon"}} = Session.execute(s, "qa", %{question: "Rhône?"})
    assert {:error, %Error{message: m}} = Session.execute(s, "qa", %{question: "more?"})
    assert m =~ "DummyLM"
  end

  test "a map answers by what the prompt contains, the longest key first" do
    lm = {:dummy, %{"France" => %{"answer" => "Paris"}, "" => %{"answer" => "?"}}}
    s = Session.open!(lm: lm)
    :ok = Session.create_program(s, "qa", signature: "question -> answer")
    assert {:ok, %{"answer" => "Paris"}} = Session.execute(s, "qa", %{question: "France?"})
    assert {:ok, %{"answer" => "?"}} = Session.execute(s, "qa", %{question: "Peru?"})
  end

  test "capture_io takes what Python prints during a call" do
    s = Session.open!()

    source = """
    import dspy

    class Chatty(dspy.Module):
        def forward(self, question):
            print("thinking about", question)
            return dspy.Prediction(answer="done")
    """

    {:ok, ["Chatty"]} = Session.load_module(s, "chatty_mod", source)
    :ok = Session.create_program(s, "chatty", module: {:custom, "Chatty"})

    assert capture_io(fn ->
             assert {:ok, %{"answer" => "done"}} =
                      Session.execute(s, "chatty", %{question: "life"})
           end) =~ "thinking about life"
  end
end
