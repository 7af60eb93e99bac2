defmodule DSPex.Native.Test.Security do
  @moduledoc """
  Helpers for the security suite (`test/security_*_test.exs`): sentinel files that hostile
  input tries to create, an "evil" OpenAI-compatible server that must never be reached,
  request counting, and genuine exports to tamper with.
  """

  import Bitwise
  import ExUnit.Assertions
  import ExUnit.Callbacks, only: [on_exit: 1]

  alias DSPex.Native.Session
  alias DSPex.Native.Test.OpenAIServer

  @doc "A string no earlier run (nor DSPy's disk cache) has seen: `prefix-<random hex>`."
  def marker(prefix) do
    unique = [
      System.os_time(:nanosecond),
      System.unique_integer([:positive]),
      :rand.uniform(1 <<< 40)
    ]

    prefix <> "-" <> Enum.map_join(unique, &Integer.to_string(&1, 36))
  end

  @doc """
  A fresh, empty directory under the system tmp dir (ASCII path, no quotes, so it can be
  spliced into Python source), removed when the test ends.
  """
  def sentinel_dir do
    dir = Path.join(System.tmp_dir!(), marker("dspex_sec"))
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    dir
  end

  @doc "The files in `dir`, sorted."
  def listing(dir), do: dir |> File.ls!() |> Enum.sort()

  @doc "Python that creates `path` when evaluated (no shell, no double quotes)."
  def open_payload(path), do: "open('#{path}','w')"

  @doc "Python that creates `path` through a shell (no double quotes)."
  def system_payload(path), do: "__import__('os').system('touch #{path}')"

  @doc "Python that creates `path` through a shell, written with double quotes only."
  def dq_payload(path), do: ~s|__import__("os").system("touch #{path}")|

  @doc "The chat-completion requests a server received."
  def chat_requests(server) do
    server
    |> OpenAIServer.requests()
    |> Enum.filter(&(&1.method == "POST" and &1.path =~ ~r{/chat/completions/?$}))
  end

  @doc """
  Starts an honest loopback server that answers every output field with `answer` (DSPy
  ChatAdapter format, or JSON when DSPy asks for JSON). Stops with the test process.
  """
  def start_server(answer) do
    {:ok, server} =
      OpenAIServer.start(
        reply: fn request ->
          String.replace(OpenAIServer.default_reply(request), "test answer", answer)
        end
      )

    server
  end

  @doc """
  Starts a loopback server whose n-th answer is `"\#{prefix}-n"` for every output field, so a
  test can tell a fresh answer from a cached one.
  """
  def start_counting_server(prefix) do
    counter = :atomics.new(1, [])

    {:ok, server} =
      OpenAIServer.start(
        reply: fn request ->
          answer = "#{prefix}-#{:atomics.add_get(counter, 1, 1)}"
          String.replace(OpenAIServer.default_reply(request), "test answer", answer)
        end
      )

    server
  end

  @doc """
  Starts the "evil" server: any request reaching it is a leak. It outlives the test process
  so that an `on_exit` check can assert, after the test, that it received no request at all.
  """
  def start_evil do
    owner = spawn(fn -> receive(do: (:stop -> :ok)) end)

    {:ok, evil} =
      OpenAIServer.start(
        owner: owner,
        reply: fn request ->
          String.replace(OpenAIServer.default_reply(request), "test answer", "EVIL ANSWER")
        end
      )

    on_exit(fn ->
      leaked = chat_requests(evil)
      send(owner, :stop)
      assert leaked == [], "the evil server received #{length(leaked)} request(s)"
    end)

    evil
  end

  @doc "Asserts `server` received no request of any kind."
  def assert_untouched(server) do
    assert OpenAIServer.requests(server) == [],
           "the evil server received #{length(OpenAIServer.requests(server))} request(s)"
  end

  @doc "An LM spec for a loopback server (no retries, so one call is one request)."
  def lm(server, key, extra \\ []) do
    {"openai/test-model", [api_base: server.url, api_key: key, num_retries: 0] ++ extra}
  end

  @doc """
  A genuine `export_program/2` result: a program created with `signature` and `module`
  in a throwaway session, optionally compiled with labeled few-shot on `trainset`.
  """
  def genuine_export(signature, module \\ :predict, trainset \\ nil) do
    s = Session.open!(lm: {:dummy, %{"" => %{"answer" => "x"}}})
    :ok = Session.create_program(s, "p", signature: signature, module: module)

    if trainset,
      do: {:ok, _} = Session.compile(s, "p", trainset, optimizer: :labeled_few_shot)

    {:ok, exported} = Session.export_program(s, "p")
    Session.close(s)
    exported
  end

  @doc """
  The number of fields on each side of a signature string, counting commas outside
  brackets and parentheses; `{1, 1}` when it has no single `->`.
  """
  def field_counts(text) do
    case String.split(text, "->") do
      [inputs, outputs] -> {count_fields(inputs), count_fields(outputs)}
      _ -> {1, 1}
    end
  end

  defp count_fields(side) do
    {n, _} =
      side
      |> String.to_charlist()
      |> Enum.reduce({1, 0}, fn
        c, {n, d} when c in ~c"([{" -> {n, d + 1}
        c, {n, d} when c in ~c")]}" -> {n, d - 1}
        ?,, {n, 0} -> {n + 1, 0}
        _, acc -> acc
      end)

    n
  end

  @doc "A signature string with `n_in` inputs and `n_out` outputs, all plain strings."
  def plain_signature({n_in, n_out}) do
    ins = Enum.map_join(1..n_in, ", ", &"in#{&1}")
    outs = Enum.map_join(1..n_out, ", ", &"out#{&1}")
    "#{ins} -> #{outs}"
  end

  @doc """
  Python source for a `dspy.utils.callback.BaseCallback` subclass `Recorder` that appends
  every LM call's messages (one JSON line per call) to `path`.
  """
  def recorder_source(path) do
    """
    import json, threading
    import dspy
    from dspy.utils.callback import BaseCallback

    _RECORD_LOCK = threading.Lock()

    class Recorder(BaseCallback):
        def on_lm_start(self, call_id, instance, inputs):
            line = json.dumps(inputs.get("messages"), default=str).replace("\\n", " ")
            with _RECORD_LOCK, open(#{inspect(path)}, "a") as f:
                f.write(line + "\\n")
    """
  end

  @doc "The lines `Recorder` wrote to `path` (none if it never ran)."
  def recorded(path) do
    case File.read(path) do
      {:ok, text} -> String.split(text, "\n", trim: true)
      {:error, :enoent} -> []
    end
  end
end
