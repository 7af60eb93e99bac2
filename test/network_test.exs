defmodule DSPex.Native.NetworkTest do
  # The real network path: dspy.LM -> litellm -> openai client -> HTTP on 127.0.0.1, against
  # a server speaking the chat-completions format.
  use ExUnit.Case, async: true

  alias DSPex.Native.{Error, Session}
  alias DSPex.Native.Test.OpenAIServer

  @key "sk-test-loopback-0123456789"

  setup do
    {:ok, server} =
      OpenAIServer.start(
        reply: fn request ->
          question = request.messages |> List.last() |> Map.fetch!("content")
          city = if question =~ "France", do: "Paris", else: "Rome"
          OpenAIServer.dspy_reply(%{"answer" => city})
        end
      )

    lm = {"openai/gpt-4o-mini", api_base: server.url, api_key: @key, cache: false, num_retries: 0}
    %{server: server, lm: lm}
  end

  # The first call imports litellm (several seconds) unless the warm-up finished already.
  @first_call 120_000

  test "a session executes through dspy.LM against the loopback server", %{server: server, lm: lm} do
    s = Session.open!(name: "net", lm: lm)
    :ok = Session.create_program(s, "qa", signature: "question -> answer")

    assert {:ok, %{"answer" => "Paris"}} =
             Session.execute(s, "qa", %{question: "Capital of France?"}, timeout: @first_call)

    assert {:ok, %{"answer" => "Rome"}} =
             Session.execute(s, "qa", %{question: "Capital of Italy?"}, timeout: @first_call)

    [first | _] = requests = OpenAIServer.requests(server)
    assert length(requests) == 2
    assert first.path == "/v1/chat/completions"
    assert first.model == "gpt-4o-mini"
    assert first.authorization == "Bearer " <> @key
    assert Enum.any?(first.messages, &(&1["content"] =~ "Capital of France?"))
    assert {:ok, %{lm: "openai/gpt-4o-mini", executions: 2}} = Session.info(s)
  end

  test "concurrent sessions on the network path each get their own answers", %{lm: lm} do
    sessions =
      for n <- 1..8 do
        s = Session.open!(name: "net#{n}", lm: lm)
        :ok = Session.create_program(s, "qa", signature: "question -> answer")
        {n, s}
      end

    sessions
    |> Enum.map(fn {n, s} ->
      question = if rem(n, 2) == 0, do: "Capital of France?", else: "Capital of Italy?"

      Task.async(fn ->
        {n, Session.execute(s, "qa", %{question: question}, timeout: @first_call)}
      end)
    end)
    |> Task.await_many(@first_call)
    |> Enum.each(fn {n, result} ->
      expected = if rem(n, 2) == 0, do: "Paris", else: "Rome"
      assert result == {:ok, %{"answer" => expected}}
    end)
  end

  test "HTTP errors come back as :python_error without the API key", %{server: server} do
    {:ok, failing} = OpenAIServer.start(reply: fn _ -> {:error, 401, "bad key #{@key}"} end)

    lm =
      {"openai/gpt-4o-mini", api_base: failing.url, api_key: @key, cache: false, num_retries: 0}

    s = Session.open!(lm: lm)
    :ok = Session.create_program(s, "qa", signature: "question -> answer")

    assert {:error, %Error{reason: :python_error} = e} =
             Session.execute(s, "qa", %{question: "?"}, timeout: @first_call)

    # The server echoed the key in its error; the message must show it scrubbed.
    assert e.message =~ "[REDACTED]"
    refute e.message =~ @key
    refute (e.traceback || "") =~ @key
    refute inspect(s) =~ @key
    assert OpenAIServer.requests(server) == []
  end
end
