defmodule DSPex.Native.ErrorsTest do
  # Errors are values, named precisely, and never spill into other calls or sessions.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers
  alias DSPex.Native.{Error, Session}

  setup do
    # `answer: int` with a non-numeric answer makes DSPy raise while parsing.
    s = Session.open!(lm: dummy(%{"answer" => "not a number", "text" => "fine"}))
    :ok = Session.create_program(s, "good", signature: "question -> text")
    :ok = Session.create_program(s, "bad", signature: "question -> answer: int")
    %{session: s}
  end

  test "a Python exception inside a program is :python_error with type and traceback", %{
    session: s
  } do
    assert {:error, %Error{reason: :python_error} = e} =
             Session.execute(s, "bad", %{question: "?"})

    assert is_binary(e.python_type) and e.python_type != ""
    assert e.traceback =~ "Traceback"
    # The session keeps working.
    assert {:ok, %{"text" => "fine"}} = Session.execute(s, "good", %{question: "?"})
    assert {:ok, %{failures: 1, executions: 1}} = Session.info(s)
  end

  test "inspect shows a traceback as lines, and reads back as the same error", %{session: s} do
    {:error, %Error{traceback: traceback} = e} = Session.execute(s, "bad", %{question: "?"})
    shown = inspect(e)
    assert shown =~ ~s|traceback: """\n  Traceback (most recent call last):\n|
    assert length(String.split(shown, "\n")) >= length(String.split(traceback, "\n"))
    assert {^e, _} = Code.eval_string(shown)

    # Without a multi-line traceback it is the plain struct.
    assert inspect(Error.new(:timeout, "slow")) ==
             ~s(%DSPex.Native.Error{reason: :timeout, message: "slow", python_type: nil, traceback: nil})

    for tail <- ["\n", "", "  \n\n"] do
      odd = %Error{
        reason: :python_error,
        message: "m",
        traceback: ~S|a "\"" \\ #{x}| <> "\nb" <> tail
      }

      assert {^odd, _} = Code.eval_string(inspect(odd))
    end
  end

  test "of 20 concurrent calls the odd ones fail and the even ones succeed", %{session: s} do
    results =
      1..20
      |> Enum.map(fn n ->
        Task.async(fn ->
          cond do
            rem(n, 4) == 1 -> {n, Session.execute(s, "unknown_#{n}", %{question: "?"})}
            rem(n, 2) == 1 -> {n, Session.execute(s, "bad", %{question: "?"})}
            true -> {n, Session.execute(s, "good", %{question: "#{n}"})}
          end
        end)
      end)
      |> Task.await_many(30_000)

    for {n, result} <- results do
      cond do
        rem(n, 4) == 1 -> assert {:error, %Error{reason: :not_found}} = result
        rem(n, 2) == 1 -> assert {:error, %Error{reason: :python_error}} = result
        true -> assert {:ok, %{"text" => "fine"}} = result
      end
    end
  end

  test "bad arguments are :invalid_argument naming what was wrong", %{session: s} do
    assert {:error, %Error{reason: :invalid_argument, message: m}} =
             Session.execute(s, "good", %{question: self()})

    assert m =~ "inputs.question is a pid"

    assert {:error, %Error{reason: :invalid_argument, message: m}} =
             Session.execute(s, "good", %{question: [1, 2 | 3]})

    assert m =~ "improper list"

    assert {:error, %Error{reason: :invalid_argument, message: m}} =
             Session.execute(s, "good", %{question: <<0xFF, 0xFE>>})

    assert m =~ "not valid UTF-8"

    assert {:error, %Error{reason: :invalid_argument, message: m}} =
             Session.create_program(s, <<0xFF>>, signature: "a -> b")

    assert m =~ "not valid UTF-8"

    assert {:error, %Error{reason: :invalid_argument}} =
             Session.create_program(s, "", signature: "a -> b")

    assert {:error, %Error{reason: :invalid_argument}} =
             Session.create_program(s, 42, signature: "a -> b")

    assert {:error, %Error{reason: :invalid_argument}} = Session.execute(s, "good", question: "?")

    assert {:error, %Error{reason: :invalid_argument, message: m}} =
             Session.execute(s, "good", %{question: "?", extra: "x"})

    assert m =~ "unknown extra"

    assert {:error, %Error{reason: :invalid_argument, message: m}} =
             Session.create_program(s, "m", signature: "a -> b", module: :react_agent)

    assert m =~ "react_agent" and m =~ ":chain_of_thought"
    assert {:error, %Error{reason: :invalid_argument}} = Session.open(lm: {:bogus, 1})
    assert {:error, %Error{reason: :invalid_argument}} = Session.open(name: 42)
  end

  test "malformed signatures are :invalid_signature", %{session: s} do
    for sig <- [
          "no arrow here",
          "a -> b -> c",
          " -> answer",
          "question ->",
          "1bad -> answer",
          "q, q -> a",
          "q -> a: os.system",
          String.duplicate("x", 20_000) <> " -> a",
          %{inputs: [], outputs: [:a]},
          %{inputs: [:q]},
          [inputs: [{:q, 42}], outputs: [:a]],
          42
        ] do
      assert {:error, %Error{reason: :invalid_signature, message: m}} =
               Session.create_program(s, "sig", signature: sig),
             "accepted #{inspect(sig, limit: 5, printable_limit: 40)}"

      assert is_binary(m) and m != ""
    end
  end

  test "a type annotation naming a module is refused before DSPy can import it", %{session: s} do
    assert {:error, %Error{reason: :invalid_signature, message: m}} =
             Session.create_program(s, "zen", signature: "q -> a: this")

    assert m =~ "'this'"
    assert :ok = Session.create_program(s, "typed", signature: "q -> a: list[str], n: int")
  end

  test "a timeout returns :timeout and leaves no late answer in the mailbox" do
    alias DSPex.Native.Test.OpenAIServer

    s =
      while_running(
        fn timeout ->
          {:ok, server} = OpenAIServer.start(delay_ms: 6_000)
          lm = {"openai/gpt-4o-mini", api_base: server.url, api_key: "k", cache: false}
          s = Session.open!(lm: {elem(lm, 0), elem(lm, 1) ++ [num_retries: 0]})
          :ok = Session.create_program(s, "slow", signature: "question -> answer")

          assert {:error, %Error{reason: :timeout}} =
                   Session.execute(s, "slow", %{question: "?"}, timeout: timeout)

          # The job started if the server got its request.
          if eventually(fn -> OpenAIServer.requests(server) != [] end, 2_000), do: s
        end,
        [300, 1_000, 3_000]
      )

    # Once the server answers, the job is interrupted and counted as a failure; its
    # answer (dropped at the gate) would follow at once.
    assert eventually(fn -> match?({:ok, %{failures: 1}}, Session.info(s)) end, 30_000)
    refute_receive _, 500
    assert mailbox() == []
  end
end
