defmodule DSPex.Native.LifecycleTest do
  # close, reset, delete and every error reason the API documents.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers
  alias DSPex.Native.{Error, Session}

  setup do
    session = Session.open!(name: "life", lm: dummy(%{"answer" => "ok"}))
    :ok = Session.create_program(session, "p", signature: "question -> answer")
    %{session: session}
  end

  test "close is idempotent and every later call returns :closed", %{session: s} do
    assert :ok = Session.close(s)
    assert :ok = Session.close(s)

    for result <- [
          Session.execute(s, "p", %{question: "?"}),
          Session.create_program(s, "q", signature: "a -> b"),
          Session.list_programs(s),
          Session.delete_program(s, "p"),
          Session.reset(s),
          Session.configure(s, lm: nil),
          Session.info(s)
        ] do
      assert {:error, %Error{reason: :closed, message: message}} = result
      assert message =~ ~s(session #{s.id} "life")
    end
  end

  test "reset drops every program but keeps the session and its LM", %{session: s} do
    :ok = Session.create_program(s, "q", signature: "question -> answer")
    assert :ok = Session.reset(s)
    assert {:ok, []} = Session.list_programs(s)
    assert {:ok, %{programs: 0, lm: "dummy"}} = Session.info(s)
    # The LM survived the reset: a new program answers with it.
    :ok = Session.create_program(s, "p", signature: "question -> answer")
    assert {:ok, %{"answer" => "ok"}} = Session.execute(s, "p", %{question: "?"})
  end

  test "delete removes one program; deleting it again is :not_found", %{session: s} do
    :ok = Session.create_program(s, "q", signature: "question -> answer")
    assert :ok = Session.delete_program(s, "p")
    assert {:ok, ["q"]} = Session.list_programs(s)
    assert {:error, %Error{reason: :not_found, message: msg}} = Session.delete_program(s, "p")
    assert msg =~ ~s("p")
  end

  test "create_program with a known ID is :already_exists unless replace: true", %{session: s} do
    assert {:error, %Error{reason: :already_exists}} =
             Session.create_program(s, "p", signature: "question -> answer")

    assert :ok = Session.create_program(s, "p", signature: "topic -> summary", replace: true)

    assert {:error, %Error{reason: :invalid_argument, message: msg}} =
             Session.execute(s, "p", %{question: "?"})

    assert msg =~ "missing topic"
  end

  test "program IDs are strings; an atom is taken as its name", %{session: s} do
    assert :ok = Session.create_program(s, :by_atom, signature: "question -> answer")
    assert {:ok, ["by_atom", "p"]} = Session.list_programs(s)
    assert {:ok, %{"answer" => "ok"}} = Session.execute(s, "by_atom", %{"question" => "?"})
  end

  test "info reports the session's own counters and only the model's name" do
    s =
      Session.open!(
        name: "info",
        lm: {"openai/gpt-4o-mini", api_key: "sk-never-shown-123", api_base: "http://127.0.0.1:1"}
      )

    assert {:ok, info} = Session.info(s)
    assert info.id == s.id
    assert info.name == "info"
    assert info.programs == 0
    assert info.executions == 0
    assert info.lm == "openai/gpt-4o-mini"
    refute inspect(info) =~ "sk-never-shown"
    refute inspect(s) =~ "sk-never-shown"
  end

  test "executions are counted per session", %{session: s} do
    for _ <- 1..3, do: {:ok, _} = Session.execute(s, "p", %{question: "?"})
    other = Session.open!(lm: dummy(%{"answer" => "x"}))
    assert {:ok, %{executions: 3}} = Session.info(s)
    assert {:ok, %{executions: 0}} = Session.info(other)
  end

  test "inspect reads like #DSPex.Native.Session<id \"name\"> without calling Python", %{
    session: s
  } do
    assert inspect(s) == ~s(#DSPex.Native.Session<#{s.id} "life">)
    unnamed = Session.open!()
    assert inspect(unnamed) == "#DSPex.Native.Session<#{unnamed.id}>"
    # Still readable after close: inspect does not depend on the Python side.
    Session.close(s)
    assert inspect(s) == ~s(#DSPex.Native.Session<#{s.id} "life">)
  end

  test "open/0 takes no options and open!/1 raises on bad ones" do
    assert {:ok, %Session{}} = Session.open()
    assert_raise Error, ~r/unknown options \[:colour\]/, fn -> Session.open!(colour: :red) end
  end

  test "execute without an LM is :no_lm" do
    s = Session.open!()
    :ok = Session.create_program(s, "p", signature: "question -> answer")

    assert {:error, %Error{reason: :no_lm, message: msg}} =
             Session.execute(s, "p", %{question: "?"})

    assert msg =~ "no LM"
  end

  test "a custom module needs an LM only if it calls one" do
    s = Session.open!()

    {:ok, ["Asks", "Echo"]} =
      Session.load_module(s, "m", """
      import dspy

      class Echo(dspy.Module):
          def forward(self, text):
              return dspy.Prediction(echo=text.upper())

      class Asks(dspy.Module):
          def __init__(self):
              super().__init__()
              self.predict = dspy.Predict("text -> reply")

          def forward(self, text):
              return self.predict(text=text)
      """)

    :ok = Session.create_program(s, "echo", module: {:custom, "Echo"})
    :ok = Session.create_program(s, "asks", module: {:custom, "Asks"})
    assert {:ok, %{"echo" => "HI"}} = Session.execute(s, "echo", %{text: "hi"})

    assert {:error, %Error{reason: :no_lm, message: msg}} =
             Session.execute(s, "asks", %{text: "hi"})

    assert msg =~ ~s(program "asks" called an LM)
  end

  test "bang variants raise DSPex.Native.Error", %{session: s} do
    assert %{"answer" => "ok"} = Session.execute!(s, "p", %{question: "?"})
    assert_raise Error, ~r/not_found/, fn -> Session.execute!(s, "missing", %{question: "?"}) end

    assert_raise Error, ~r/already_exists/, fn ->
      Session.create_program!(s, "p", signature: "a -> b")
    end
  end

  test "configure changes only what it is given", %{session: s} do
    assert :ok = Session.configure(s, timeout: 5_000)
    assert {:ok, %{"answer" => "ok"}} = Session.execute(s, "p", %{question: "?"})
  end

  test "bad options are :invalid_argument, never a raise", %{session: s} do
    assert {:error, %Error{reason: :invalid_argument, message: m}} =
             Session.execute(s, "p", %{question: "?"}, timeout: -1)

    assert m =~ "timeout"

    for result <- [
          Session.list_programs(s, colour: :red),
          Session.info(s, bogus: 1),
          Session.reset(s, nope: true),
          Session.delete_program(s, "p", what: 1),
          Session.configure(s, :not_a_list)
        ] do
      assert {:error, %Error{reason: :invalid_argument}} = result
    end

    assert {:ok, ["p"]} = Session.list_programs(s)
  end
end
