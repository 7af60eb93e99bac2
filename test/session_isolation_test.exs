defmodule DSPex.Native.SessionIsolationTest do
  # The seed scenarios: the problems of the global-dict port bridge, each gone.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers
  alias DSPex.Native.{Error, Session}

  test "two sessions run a program with the same ID from parallel tasks, each with its own LM" do
    a = Session.open!(name: "a", lm: dummy(%{"answer" => "answer from a"}))
    b = Session.open!(name: "b", lm: dummy(%{"answer" => "answer from b"}))
    :ok = Session.create_program(a, "prog_1", signature: "question -> answer")
    :ok = Session.create_program(b, "prog_1", signature: "question -> answer")

    results =
      for _ <- 1..10, s <- [a, b] do
        Task.async(fn -> {s.name, Session.execute(s, "prog_1", %{question: "who?"})} end)
      end
      |> Task.await_many(30_000)

    for {name, result} <- results do
      assert result == {:ok, %{"answer" => "answer from #{name}"}}
    end
  end

  test "two users' sessions hold programs with the same ID without interfering" do
    alice = Session.open!(name: "alice", lm: dummy(%{"answer" => "alice"}))
    bob = Session.open!(name: "bob", lm: dummy(%{"answer" => "bob"}))

    assert :ok = Session.create_program(alice, "prog_1", signature: "question -> answer")
    # The port bridge said "Program already exists" here.
    assert :ok = Session.create_program(bob, "prog_1", signature: "question -> answer")
    assert :ok = Session.delete_program(alice, "prog_1")

    assert {:ok, []} = Session.list_programs(alice)
    assert {:ok, ["prog_1"]} = Session.list_programs(bob)
    assert {:ok, %{"answer" => "bob"}} = Session.execute(bob, "prog_1", %{question: "?"})

    assert {:error, %Error{reason: :not_found}} =
             Session.execute(alice, "prog_1", %{question: "?"})
  end

  test "ten sessions x ten concurrent create_program calls with the same ten IDs" do
    ids = for n <- 1..10, do: "op_#{n}"
    sessions = for n <- 1..10, do: Session.open!(name: "s#{n}")

    for s <- sessions, id <- ids do
      Task.async(fn -> Session.create_program(s, id, signature: "question -> answer") end)
    end
    |> Task.await_many(30_000)
    |> Enum.each(&assert(&1 == :ok))

    for s <- sessions do
      assert {:ok, listed} = Session.list_programs(s)
      assert listed == Enum.sort(ids)
      assert {:ok, %{programs: 10}} = Session.info(s)
    end

    # A further create in one session shows in that session only.
    [first | rest] = sessions
    :ok = Session.create_program(first, "extra", signature: "q -> a")
    assert {:ok, listed} = Session.list_programs(first)
    assert "extra" in listed
    for s <- rest, do: assert(Session.list_programs(s) == {:ok, Enum.sort(ids)})
  end

  test "each session keeps its own LM and settings" do
    s = Session.open!(lm: dummy(%{"answer" => "first"}))
    other = Session.open!(lm: dummy(%{"answer" => "other"}))
    :ok = Session.create_program(s, "p", signature: "question -> answer")
    :ok = Session.create_program(other, "p", signature: "question -> answer")

    assert {:ok, %{"answer" => "first"}} = Session.execute(s, "p", %{question: "?"})
    :ok = Session.configure(s, lm: dummy(%{"answer" => "second"}))
    assert {:ok, %{"answer" => "second"}} = Session.execute(s, "p", %{question: "?"})
    assert {:ok, %{"answer" => "other"}} = Session.execute(other, "p", %{question: "?"})

    :ok = Session.configure(s, lm: nil)
    assert {:error, %Error{reason: :no_lm}} = Session.execute(s, "p", %{question: "?"})
  end

  test "chain_of_thought returns reasoning with the outputs" do
    s =
      Session.open!(
        lm: dummy(%{"reasoning" => "France's capital is Paris.", "answer" => "Paris"})
      )

    :ok =
      Session.create_program(s, "cot",
        signature: %{
          inputs: [question: "a geography question"],
          outputs: [answer: "one word"],
          instructions: "Answer briefly."
        },
        module: :chain_of_thought
      )

    assert {:ok, %{"reasoning" => "France's capital is Paris.", "answer" => "Paris"}} =
             Session.execute(s, :cot, %{"question" => "Capital of France?"})
  end

  test "a DummyLM list is consumed one answer per call, per session" do
    s = Session.open!(lm: {:dummy, [%{"answer" => "one"}, %{"answer" => "two"}]})
    :ok = Session.create_program(s, "p", signature: "question -> answer")
    assert {:ok, %{"answer" => "one"}} = Session.execute(s, "p", %{question: "a"})
    assert {:ok, %{"answer" => "two"}} = Session.execute(s, "p", %{question: "b"})
  end
end
