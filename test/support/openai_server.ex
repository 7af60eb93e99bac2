defmodule DSPex.Native.Test.OpenAIServer do
  @moduledoc """
  A minimal, real HTTP/1.1 server speaking the OpenAI chat-completions API,
  built on `:gen_tcp` only (no dependencies), for tests and benchmarks.

  Listens on `127.0.0.1` on an ephemeral port, one process per connection,
  with keep-alive, `Content-Length` and chunked request bodies. Routes:

    * `POST /v1/chat/completions` – `chat.completion` JSON, or SSE
      `chat.completion.chunk` events when the body has `"stream": true`
    * `GET /v1/models` – a one-model list
    * anything else – 404 with an OpenAI-style error JSON

  Point DSPy at it with
  `dspy.LM("openai/gpt-4o-mini", api_base: server.url, api_key: "test")`.
  """

  use GenServer

  alias __MODULE__.JSON

  defstruct [:pid, :port, :url]

  @type t :: %__MODULE__{pid: pid, port: :inet.port_number(), url: String.t()}
  @type request :: %{
          method: String.t(),
          path: String.t(),
          query: String.t(),
          headers: %{String.t() => String.t()},
          body: binary,
          json: term,
          messages: [map] | nil,
          model: String.t() | nil,
          authorization: String.t() | nil,
          stream: boolean
        }

  @default_text "test answer"
  @idle_timeout 60_000
  @max_head 65_536

  ## Public API

  @doc """
  Starts a server. Returns `{:ok, %#{inspect(__MODULE__)}{pid, port, url}}`,
  where `url` is `"http://127.0.0.1:PORT/v1"`.

  Options:
    * `:reply` – `(request -> String.t() | {:error, status, message})`, the
      assistant content (default: `default_reply/1`). A raise yields a 400.
    * `:delay_ms` – sleep before each chat answer (default `0`).
    * `:chunk_delay_ms` – with `"stream": true`, sleep between chunks (default `0`).
    * `:owner` – the server stops when this process exits (default `self()`).
    * `:record` – keep requests for `requests/1` (default `true`).
  """
  @spec start(keyword) :: {:ok, t} | {:error, term}
  def start(opts \\ []) do
    owner = Keyword.get(opts, :owner, self())

    with {:ok, pid} <- GenServer.start(__MODULE__, {opts, owner}) do
      port = GenServer.call(pid, :port)
      {:ok, %__MODULE__{pid: pid, port: port, url: "http://127.0.0.1:#{port}/v1"}}
    end
  end

  @doc "Stops the server, its acceptor and all open connections. Idempotent."
  @spec stop(t) :: :ok
  def stop(%__MODULE__{pid: pid}) do
    GenServer.stop(pid, :shutdown)
  catch
    :exit, _ -> :ok
  end

  @doc "Requests received so far, oldest first (see `t:request/0`)."
  @spec requests(t) :: [request]
  def requests(%__MODULE__{pid: pid}), do: GenServer.call(pid, :requests)

  @doc """
  Formats output fields as a DSPy ChatAdapter assistant message.
  Pass a keyword/tuple list to fix the field order.

      iex> DSPex.Native.Test.OpenAIServer.dspy_reply(%{"answer" => "Paris"})
      "[[ ## answer ## ]]\\nParis\\n\\n[[ ## completed ## ]]"
  """
  @spec dspy_reply(map | [{atom | String.t(), term}]) :: String.t()
  def dspy_reply(fields) do
    Enum.map_join(fields, "", fn {k, v} -> "[[ ## #{k} ## ]]\n#{field_text(v)}\n\n" end) <>
      "[[ ## completed ## ]]"
  end

  @doc """
  The default `:reply`: answers every output field listed in DSPy's system
  prompt ("Your output fields are: ...") with a type-appropriate placeholder
  (`"#{@default_text}"` for strings; `0`, `True`, `[]`, ... otherwise), as a
  JSON object when DSPy's JSONAdapter is used. Without fields: `"#{@default_text}"`.
  """
  @spec default_reply(request) :: String.t()
  def default_reply(request) do
    system =
      Enum.find_value(request.messages || [], "", fn
        %{"role" => "system", "content" => c} when is_binary(c) -> c
        _ -> nil
      end)

    section = system |> String.split("Your output fields are:") |> Enum.at(1, "")
    fields = Regex.scan(~r/^\d+\. `([^`]+)` \((.*)\):/m, section, capture: :all_but_first)
    json? = is_map(request.json) and Map.has_key?(request.json, "response_format")

    cond do
      fields == [] ->
        @default_text

      json? or system =~ "JSON object" ->
        JSON.encode!(for [n, t] <- fields, do: {n, placeholder(t)})

      true ->
        dspy_reply(for [n, t] <- fields, do: {n, placeholder(t)})
    end
  end

  defp placeholder("int"), do: 0
  defp placeholder("float"), do: 0.0
  defp placeholder("bool"), do: true
  defp placeholder("dict" <> _), do: %{}

  defp placeholder("Literal[" <> _ = t),
    do: Regex.run(~r/^Literal\[\s*['"]?([^'",\]]*)/, t) |> List.last()

  defp placeholder(<<t::binary>>) when binary_part(t, 0, 4) in ["list", "List"], do: []
  defp placeholder(_), do: @default_text

  defp field_text(v) when is_binary(v), do: v
  defp field_text(true), do: "True"
  defp field_text(false), do: "False"
  defp field_text(nil), do: "None"
  defp field_text(v) when is_atom(v) or is_number(v), do: to_string(v)
  defp field_text(v), do: JSON.encode!(v)

  ## Server process

  @impl true
  def init({opts, owner}) do
    Process.flag(:trap_exit, true)
    owner_ref = Process.monitor(owner)

    sock_opts =
      [:binary, ip: {127, 0, 0, 1}, packet: :raw, active: false] ++
        [reuseaddr: true, nodelay: true, backlog: 1024]

    case :gen_tcp.listen(0, sock_opts) do
      {:ok, lsock} ->
        {:ok, port} = :inet.port(lsock)

        ctx = %{
          server: self(),
          reply: Keyword.get(opts, :reply, &default_reply/1),
          delay_ms: Keyword.get(opts, :delay_ms, 0),
          chunk_delay_ms: Keyword.get(opts, :chunk_delay_ms, 0),
          record: Keyword.get(opts, :record, true)
        }

        acceptor = spawn_link(fn -> accept_loop(lsock, ctx) end)
        {:ok, %{lsock: lsock, port: port, acceptor: acceptor, owner_ref: owner_ref, requests: []}}

      {:error, reason} ->
        {:stop, reason}
    end
  end

  @impl true
  def handle_call(:port, _from, s), do: {:reply, s.port, s}
  def handle_call(:requests, _from, s), do: {:reply, Enum.reverse(s.requests), s}

  def handle_call({:record, req}, _from, s),
    do: {:reply, :ok, %{s | requests: [req | s.requests]}}

  @impl true
  def handle_info({:DOWN, ref, :process, _, _}, %{owner_ref: ref} = s), do: {:stop, :shutdown, s}

  def handle_info({:EXIT, pid, reason}, %{acceptor: pid} = s),
    do: {:stop, {:acceptor_down, reason}, s}

  def handle_info(_msg, s), do: {:noreply, s}

  @impl true
  def terminate(_reason, s) do
    :gen_tcp.close(s.lsock)
    {:links, links} = Process.info(self(), :links)

    links
    |> Enum.filter(&is_pid/1)
    |> Enum.map(fn pid -> {Process.monitor(pid), Process.exit(pid, :kill)} end)
    |> Enum.each(fn {ref, _} ->
      receive do: ({:DOWN, ^ref, _, _, _} -> :ok), after: (1000 -> :ok)
    end)
  end

  defp accept_loop(lsock, ctx) do
    case :gen_tcp.accept(lsock) do
      {:ok, sock} ->
        pid = spawn(fn -> conn_init(ctx) end)
        :ok = :gen_tcp.controlling_process(sock, pid)
        send(pid, {:go, sock})
        accept_loop(lsock, ctx)

      {:error, :closed} ->
        exit(:shutdown)

      {:error, reason} when reason in [:emfile, :enfile, :econnaborted] ->
        Process.sleep(10)
        accept_loop(lsock, ctx)
    end
  end

  ## Connection process

  defp conn_init(ctx) do
    Process.link(ctx.server)

    receive do
      {:go, sock} -> conn_loop(sock, "", ctx)
    after
      5000 -> :ok
    end
  end

  defp conn_loop(sock, buf, ctx) do
    case read_request(sock, buf) do
      {:ok, req, rest} ->
        keep? = keep_alive?(req)

        if handle(sock, req, keep?, ctx) == :ok and keep?,
          do: conn_loop(sock, rest, ctx),
          else: :gen_tcp.close(sock)

      {:bad, msg} ->
        send_json(sock, 400, error_body(msg, "invalid_request_error", "bad_request"), false)
        :gen_tcp.close(sock)

      {:error, _} ->
        :gen_tcp.close(sock)
    end
  end

  defp keep_alive?(%{version: v, headers: h}) do
    conn = h |> Map.get("connection", "") |> String.downcase()

    if v == "HTTP/1.0", do: conn =~ "keep-alive", else: not (conn =~ "close")
  end

  # --- request parsing

  defp read_request(sock, buf) do
    with {:ok, head, rest} <- read_head(sock, buf),
         {:ok, req} <- parse_head(head) do
      if Map.get(req.headers, "expect", "") =~ ~r/100-continue/i,
        do: :gen_tcp.send(sock, "HTTP/1.1 100 Continue\r\n\r\n")

      te = req.headers |> Map.get("transfer-encoding", "") |> String.downcase()

      result =
        cond do
          te =~ "chunked" ->
            read_chunked(sock, rest, [])

          len = req.headers["content-length"] ->
            read_exact(sock, rest, String.to_integer(String.trim(len)))

          true ->
            {:ok, "", rest}
        end

      with {:ok, body, rest} <- result, do: {:ok, Map.put(req, :body, body), rest}
    end
  rescue
    ArgumentError -> {:bad, "Malformed HTTP request"}
  end

  defp read_head(sock, buf) do
    buf = trim_leading_crlf(buf)

    case :binary.split(buf, "\r\n\r\n") do
      [head, rest] ->
        {:ok, head, rest}

      [_] when byte_size(buf) > @max_head ->
        {:bad, "Request header too large"}

      [_] ->
        with {:ok, data} <- :gen_tcp.recv(sock, 0, @idle_timeout),
             do: read_head(sock, buf <> data)
    end
  end

  defp trim_leading_crlf("\r\n" <> rest), do: trim_leading_crlf(rest)
  defp trim_leading_crlf(buf), do: buf

  defp parse_head(head) do
    [line | lines] = String.split(head, "\r\n")

    case String.split(line, " ") do
      [method, target, "HTTP/1." <> _ = version] ->
        [path | query] = String.split(target, "?", parts: 2)

        headers =
          for l <- lines,
              [k, v] <- [String.split(l, ":", parts: 2)],
              into: %{},
              do: {String.downcase(String.trim(k)), String.trim(v)}

        {:ok,
         %{
           method: method,
           path: path,
           query: Enum.join(query),
           version: version,
           headers: headers
         }}

      _ ->
        {:bad, "Malformed request line"}
    end
  end

  defp read_exact(_sock, buf, n) when byte_size(buf) >= n,
    do: {:ok, binary_part(buf, 0, n), binary_part(buf, n, byte_size(buf) - n)}

  defp read_exact(sock, buf, n) do
    with {:ok, data} <- :gen_tcp.recv(sock, n - byte_size(buf), @idle_timeout),
         do: read_exact(sock, buf <> data, n)
  end

  defp read_line(sock, buf) do
    case :binary.split(buf, "\r\n") do
      [line, rest] ->
        {:ok, line, rest}

      [_] ->
        with {:ok, data} <- :gen_tcp.recv(sock, 0, @idle_timeout),
             do: read_line(sock, buf <> data)
    end
  end

  defp read_chunked(sock, buf, acc) do
    with {:ok, line, rest} <- read_line(sock, buf) do
      size = line |> String.split(";") |> hd() |> String.trim() |> String.to_integer(16)

      if size == 0 do
        skip_trailers(sock, rest, IO.iodata_to_binary(acc))
      else
        with {:ok, chunk, rest} <- read_exact(sock, rest, size),
             {:ok, "", rest} <- read_line(sock, rest),
             do: read_chunked(sock, rest, [acc | chunk])
      end
    end
  end

  defp skip_trailers(sock, buf, body) do
    case read_line(sock, buf) do
      {:ok, "", rest} -> {:ok, body, rest}
      {:ok, _trailer, rest} -> skip_trailers(sock, rest, body)
      err -> err
    end
  end

  # --- routing

  defp handle(sock, %{method: method, path: path} = req, keep?, ctx) do
    json = if req.body != "", do: try(do: JSON.decode!(req.body), rescue: (_ -> :invalid))
    obj = if is_map(json), do: json, else: %{}

    req =
      Map.merge(req, %{
        json: json,
        messages: obj["messages"],
        model: obj["model"],
        stream: obj["stream"] == true,
        authorization: req.headers["authorization"]
      })

    if ctx.record, do: GenServer.call(ctx.server, {:record, Map.delete(req, :version)})

    case {method, String.trim_trailing(path, "/")} do
      {"POST", p} when p in ["/v1/chat/completions", "/chat/completions"] ->
        chat(sock, req, keep?, ctx)

      {"GET", p} when p in ["/v1/models", "/models"] ->
        models = [
          %{
            "id" => "gpt-4o-mini",
            "object" => "model",
            "created" => 0,
            "owned_by" => "dspex-test"
          }
        ]

        send_json(sock, 200, %{"object" => "list", "data" => models}, keep?)

      _ ->
        msg = "Unknown request URL: #{method} #{path}. Please check the URL for typos."
        send_json(sock, 404, error_body(msg, "invalid_request_error", "unknown_url"), keep?)
    end
  end

  defp chat(sock, req, keep?, ctx) do
    cond do
      not is_map(req.json) ->
        send_json(
          sock,
          400,
          error_body(
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            nil
          ),
          keep?
        )

      not is_list(req.messages) ->
        send_json(
          sock,
          400,
          error_body(
            "Missing required parameter: 'messages'.",
            "invalid_request_error",
            "missing_required_parameter"
          ),
          keep?
        )

      true ->
        if ctx.delay_ms > 0, do: Process.sleep(ctx.delay_ms)

        reply =
          try do
            ctx.reply.(req)
          rescue
            e ->
              {:error, 400,
               "reply function raised: " <> Exception.format(:error, e, __STACKTRACE__)}
          end

        case reply do
          content when is_binary(content) ->
            completion(sock, req, content, keep?, ctx.chunk_delay_ms)

          {:error, status, msg} ->
            send_json(sock, status, error_body(msg, error_type(status), nil), keep?)

          other ->
            send_json(
              sock,
              400,
              error_body(
                "reply function returned #{inspect(other)}",
                "invalid_request_error",
                nil
              ),
              keep?
            )
        end
    end
  end

  defp completion(sock, req, content, keep?, chunk_delay_ms) do
    id = "chatcmpl-#{System.unique_integer([:positive])}"
    created = System.os_time(:second)
    model = req.model || "gpt-4o-mini"
    prompt = req.messages |> Enum.map(&tokens(&1["content"])) |> Enum.sum()

    usage = %{
      "prompt_tokens" => prompt,
      "completion_tokens" => tokens(content),
      "total_tokens" => prompt + tokens(content)
    }

    base = %{"id" => id, "created" => created, "model" => model}

    if req.stream do
      chunk = fn delta, finish ->
        Map.merge(base, %{
          "object" => "chat.completion.chunk",
          "choices" => [%{"index" => 0, "delta" => delta, "finish_reason" => finish}]
        })
      end

      pieces = if content == "", do: [], else: Regex.split(~r/(?=\s)/u, content, trim: true)
      usage? = get_in(req.json, ["stream_options", "include_usage"]) == true

      events =
        [chunk.(%{"role" => "assistant", "content" => ""}, nil)] ++
          Enum.map(pieces, &chunk.(%{"content" => &1}, nil)) ++
          [chunk.(%{}, "stop")] ++
          if(usage?,
            do: [
              Map.merge(base, %{
                "object" => "chat.completion.chunk",
                "choices" => [],
                "usage" => usage
              })
            ],
            else: []
          )

      head = [
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n",
        "transfer-encoding: chunked\r\nconnection: ",
        if(keep?, do: "keep-alive", else: "close"),
        "\r\n\r\n"
      ]

      data = Enum.map(events, &("data: " <> JSON.encode!(&1) <> "\n\n")) ++ ["data: [DONE]\n\n"]
      body = Enum.map(data, &[Integer.to_string(byte_size(&1), 16), "\r\n", &1, "\r\n"])

      if chunk_delay_ms > 0 do
        :gen_tcp.send(sock, head)

        Enum.each(body, fn piece ->
          Process.sleep(chunk_delay_ms)
          :gen_tcp.send(sock, piece)
        end)

        :gen_tcp.send(sock, "0\r\n\r\n")
      else
        :gen_tcp.send(sock, [head, body, "0\r\n\r\n"])
      end
    else
      message = %{"role" => "assistant", "content" => content}

      send_json(
        sock,
        200,
        Map.merge(base, %{
          "object" => "chat.completion",
          "choices" => [%{"index" => 0, "message" => message, "finish_reason" => "stop"}],
          "usage" => usage
        }),
        keep?
      )
    end
  end

  defp tokens(text) when is_binary(text), do: max(1, div(byte_size(text) + 3, 4))
  defp tokens(nil), do: 0
  defp tokens(other), do: tokens(JSON.encode!(other))

  defp error_type(429), do: "rate_limit_exceeded"
  defp error_type(s) when s >= 500, do: "server_error"
  defp error_type(_), do: "invalid_request_error"

  defp error_body(msg, type, code),
    do: %{"error" => %{"message" => msg, "type" => type, "param" => nil, "code" => code}}

  defp send_json(sock, status, term, keep?) do
    body = JSON.encode!(term)

    :gen_tcp.send(sock, [
      "HTTP/1.1 #{status} #{reason(status)}\r\n",
      "content-type: application/json\r\ncontent-length: #{byte_size(body)}\r\n",
      "connection: #{if keep?, do: "keep-alive", else: "close"}\r\n\r\n",
      body
    ])
  end

  defp reason(200), do: "OK"
  defp reason(400), do: "Bad Request"
  defp reason(401), do: "Unauthorized"
  defp reason(404), do: "Not Found"
  defp reason(429), do: "Too Many Requests"
  defp reason(500), do: "Internal Server Error"
  defp reason(503), do: "Service Unavailable"
  defp reason(_), do: "Status"

  defmodule JSON do
    @moduledoc """
    Tiny JSON codec. `encode!/1` takes maps, non-empty lists of `{key, value}`
    (objects, order kept), lists, strings, numbers, booleans, `nil`, atoms.
    `decode!/1` returns maps with string keys; raises `ArgumentError` on bad input.
    """

    @doc "Encodes a term to a JSON binary."
    @spec encode!(term) :: String.t()
    def encode!(term), do: IO.iodata_to_binary(enc(term))

    defp enc(nil), do: "null"
    defp enc(true), do: "true"
    defp enc(false), do: "false"
    defp enc(a) when is_atom(a), do: str(Atom.to_string(a))
    defp enc(s) when is_binary(s), do: str(s)
    defp enc(i) when is_integer(i), do: Integer.to_string(i)
    defp enc(f) when is_float(f), do: :erlang.float_to_binary(f, [:short])
    defp enc(m) when is_map(m), do: obj(Map.to_list(m))
    defp enc([{_, _} | _] = kv), do: obj(kv)
    defp enc(l) when is_list(l), do: [?[, Enum.map_intersperse(l, ?,, &enc/1), ?]]
    defp enc(other), do: raise(ArgumentError, "cannot encode to JSON: #{inspect(other)}")

    defp obj(kv),
      do: [?{, Enum.map_intersperse(kv, ?,, fn {k, v} -> [str(to_string(k)), ?:, enc(v)] end), ?}]

    defp str(s), do: [?", esc(s, s, 0, 0, []), ?"]

    defp esc(<<>>, o, skip, len, acc), do: Enum.reverse([binary_part(o, skip, len) | acc])

    defp esc(<<c, r::binary>>, o, skip, len, acc) when c >= 0x20 and c != ?" and c != ?\\,
      do: esc(r, o, skip, len + 1, acc)

    defp esc(<<c, r::binary>>, o, skip, len, acc),
      do: esc(r, o, skip + len + 1, 0, [esc_char(c), binary_part(o, skip, len) | acc])

    defp esc_char(?"), do: "\\\""
    defp esc_char(?\\), do: "\\\\"
    defp esc_char(?\n), do: "\\n"
    defp esc_char(?\r), do: "\\r"
    defp esc_char(?\t), do: "\\t"
    defp esc_char(c), do: "\\u" <> String.pad_leading(Integer.to_string(c, 16), 4, "0")

    @doc "Decodes a JSON binary."
    @spec decode!(binary) :: term
    def decode!(bin) when is_binary(bin) do
      case value(ws(bin)) do
        {v, rest} -> if ws(rest) == "", do: v, else: err(rest)
      end
    end

    defp err(<<c::utf8, _::binary>>),
      do: raise(ArgumentError, "invalid JSON at #{inspect(<<c::utf8>>)}")

    defp err(rest),
      do:
        raise(
          ArgumentError,
          "invalid JSON near #{inspect(binary_part(rest, 0, min(8, byte_size(rest))))}"
        )

    defp ws(<<c, r::binary>>) when c in ~c" \t\r\n", do: ws(r)
    defp ws(b), do: b

    defp value("{" <> r),
      do:
        (case ws(r) do
           "}" <> r -> {%{}, r}
           r -> members(r, %{})
         end)

    defp value("[" <> r),
      do:
        (case ws(r) do
           "]" <> r -> {[], r}
           r -> elements(r, [])
         end)

    defp value("\"" <> r), do: string(r, r, 0, 0, [])
    defp value("true" <> r), do: {true, r}
    defp value("false" <> r), do: {false, r}
    defp value("null" <> r), do: {nil, r}
    defp value(<<c, _::binary>> = b) when c == ?- or c in ?0..?9, do: number(b)
    defp value(b), do: err(b)

    defp members("\"" <> r, acc) do
      {k, r} = string(r, r, 0, 0, [])

      case ws(r) do
        ":" <> r ->
          {v, r} = value(ws(r))
          acc = Map.put(acc, k, v)

          case ws(r) do
            "," <> r -> members(ws(r), acc)
            "}" <> r -> {acc, r}
            r -> err(r)
          end

        r ->
          err(r)
      end
    end

    defp members(r, _), do: err(r)

    defp elements(r, acc) do
      {v, r} = value(r)

      case ws(r) do
        "," <> r -> elements(ws(r), [v | acc])
        "]" <> r -> {Enum.reverse([v | acc]), r}
        r -> err(r)
      end
    end

    defp string("\"" <> r, o, skip, len, acc),
      do: {IO.iodata_to_binary([acc | binary_part(o, skip, len)]), r}

    defp string("\\" <> r, o, skip, len, acc) do
      {piece, r} = unescape(r)
      string(r, o, byte_size(o) - byte_size(r), 0, [acc, binary_part(o, skip, len) | piece])
    end

    defp string(<<c, r::binary>>, o, skip, len, acc) when c >= 0x20,
      do: string(r, o, skip, len + 1, acc)

    defp string(r, _, _, _, _), do: err(r)

    for {c, v} <- [
          {?", ?"},
          {?\\, ?\\},
          {?/, ?/},
          {?b, ?\b},
          {?f, ?\f},
          {?n, ?\n},
          {?r, ?\r},
          {?t, ?\t}
        ] do
      defp unescape(<<unquote(c), r::binary>>), do: {<<unquote(v)>>, r}
    end

    defp unescape(<<?u, h::binary-size(4), r::binary>>) do
      case {hex4(h), r} do
        {hi, <<"\\u", l::binary-size(4), r2::binary>>} when hi in 0xD800..0xDBFF ->
          case hex4(l) do
            lo when lo in 0xDC00..0xDFFF ->
              {<<0x10000 + (hi - 0xD800) * 0x400 + (lo - 0xDC00)::utf8>>, r2}

            _ ->
              {<<0xFFFD::utf8>>, r}
          end

        {cp, _} when cp in 0xD800..0xDFFF ->
          {<<0xFFFD::utf8>>, r}

        {cp, _} ->
          {<<cp::utf8>>, r}
      end
    end

    defp unescape(r), do: err(r)

    defp hex4(h) do
      if h =~ ~r/\A[0-9a-fA-F]{4}\z/, do: String.to_integer(h, 16), else: err(h)
    end

    defp number(b) do
      [num] = Regex.run(~r/\A-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/, b) || err(b)
      rest = binary_part(b, byte_size(num), byte_size(b) - byte_size(num))

      cond do
        String.contains?(num, ".") ->
          {String.to_float(num), rest}

        String.contains?(num, ["e", "E"]) ->
          {String.to_float(String.replace(num, ~r/[eE]/, ".0e")), rest}

        true ->
          {String.to_integer(num), rest}
      end
    end
  end
end
