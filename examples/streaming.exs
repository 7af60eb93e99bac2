# A LiveView-style consumer: one process streams an answer and forwards each piece to
# another (the "view"), which renders it as it comes. Runs offline against a small local
# OpenAI-compatible server that streams its answer word by word.
#   mix run examples/streaming.exs
alias DSPex.Native.Session
:ok = DSPex.Native.await_ready()

# A tiny streaming server on 127.0.0.1: answers every chat request with server-sent events.
answer =
  "[[ ## answer ## ]]\nParis is the capital of France, on the Seine.\n\n[[ ## completed ## ]]"

{:ok, listen} = :gen_tcp.listen(0, [:binary, active: false, reuseaddr: true, ip: {127, 0, 0, 1}])
{:ok, port} = :inet.port(listen)

serve = fn serve ->
  {:ok, socket} = :gen_tcp.accept(listen)
  {:ok, _request} = :gen_tcp.recv(socket, 0, 5_000)

  chunk = fn text ->
    event =
      ~s({"id":"x","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"content":#{inspect(text)}},"finish_reason":null}]})

    data = "data: " <> event <> "\n\n"
    [Integer.to_string(byte_size(data), 16), "\r\n", data, "\r\n"]
  end

  :gen_tcp.send(
    socket,
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
  )

  for word <- Regex.split(~r/(?=\s)/, answer) do
    Process.sleep(30)
    :gen_tcp.send(socket, chunk.(word))
  end

  done = "data: [DONE]\n\n"
  :gen_tcp.send(socket, [Integer.to_string(byte_size(done), 16), "\r\n", done, "\r\n0\r\n\r\n"])
  :gen_tcp.close(socket)
  serve.(serve)
end

spawn(fn -> serve.(serve) end)

lm = {"openai/local", api_base: "http://127.0.0.1:#{port}/v1", api_key: "local", cache: false}
session = Session.open!(name: "streaming", lm: lm)
:ok = Session.create_program(session, "qa", signature: "question -> answer")

# The "view": renders pieces as they arrive.
view =
  spawn(fn ->
    render = fn render, text ->
      receive do
        {:token, piece} ->
          IO.write(piece)
          render.(render, text <> piece)

        {:done, outputs, from} ->
          IO.puts("\n\ndone: #{inspect(outputs)}")
          send(from, :rendered)
      end
    end

    render.(render, "")
  end)

# The consumer: streams and forwards.
session
|> Session.stream("qa", %{question: "What is the capital of France?"}, timeout: 60_000)
|> Enum.each(fn
  {:chunk, "answer", text} -> send(view, {:token, text})
  {:done, outputs} -> send(view, {:done, outputs, self()})
end)

receive do
  :rendered -> :ok
end
