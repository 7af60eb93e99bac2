defmodule DSPex.Bench.PortBridge do
  @moduledoc """
  Benchmark baseline: the classic Erlang-port bridge that dspex_native replaces.

  A GenServer owns one `Port` to `bench/port_bridge.py`: a single Python
  process talking `{:packet, 4}` frames of JSON over stdin/stdout and holding
  one global dict of programs. The GenServer is a fair, pipelining client -
  it assigns request ids, writes each request to the port at once, keeps
  `id -> from` and replies as answers arrive, so it never waits on Python and
  any number of processes may call concurrently. JSON encoding and decoding
  happen in the calling processes, not in the GenServer. What remains is the
  design's inherent cost: a copy through a pipe, JSON both ways, and one
  Python loop that serves every request strictly one after another.

  Needs `DSPex.Native.Test.OpenAIServer.JSON` loaded
  (`Code.require_file("test/support/openai_server.ex")`).

      {:ok, b} = DSPex.Bench.PortBridge.start_link()
      {:ok, %{"x" => 1}} = DSPex.Bench.PortBridge.call(b, "ping", %{"x" => 1})
  """

  use GenServer

  alias DSPex.Native.Test.OpenAIServer.JSON

  @python Path.expand("../.venv/bin/python", __DIR__)
  @script Path.join(__DIR__, "port_bridge.py")

  @doc """
  Starts the Python process and returns once it answered a first ping, so the
  start-up cost (interpreter + `import dspy`) is paid here; see `info/1`.

  Options: `:python` (default `#{@python}`), `:script` (default
  `port_bridge.py` next to this file), `:start_timeout` ms (default 120_000),
  `:name`.
  """
  @spec start_link(keyword) :: GenServer.on_start()
  def start_link(opts \\ []) do
    timeout = Keyword.get(opts, :start_timeout, 120_000)

    GenServer.start_link(
      __MODULE__,
      opts,
      Keyword.take(opts, [:name]) ++ [timeout: timeout + 5_000]
    )
  end

  @doc """
  Sends `command` with `args` (a JSON-encodable map) and waits for its answer:
  `{:ok, result}` or `{:error, message}`.
  """
  @spec call(GenServer.server(), String.t(), map, timeout) :: {:ok, term} | {:error, String.t()}
  def call(server, command, args \\ %{}, timeout \\ 60_000) do
    # Encoded here as `{"command":...,"args":...}`; the GenServer only splices in the id.
    body = JSON.encode!([{"command", command}, {"args", args}])

    case GenServer.call(server, {:request, body}, timeout) do
      {:data, reply} ->
        case JSON.decode!(reply) do
          %{"ok" => true, "result" => result} -> {:ok, result}
          %{"error" => message} -> {:error, message}
        end

      {:error, _} = error ->
        error
    end
  end

  @doc """
  `%{os_pid, startup_us, started_at, pending}`: `startup_us` is the time from
  opening the port to the first ping's answer; `started_at` is the
  `System.monotonic_time(:microsecond)` at which the port was opened.
  """
  @spec info(GenServer.server()) :: map
  def info(server), do: GenServer.call(server, :info)

  @doc "Always `true` once `start_link/1` returned (it waits for the first ping)."
  @spec ready?(GenServer.server()) :: boolean
  def ready?(server) do
    case GenServer.whereis(server) do
      pid when is_pid(pid) -> Process.alive?(pid)
      _ -> false
    end
  end

  @doc "Closes the port (Python sees EOF and exits) and stops the GenServer."
  @spec stop(GenServer.server()) :: :ok
  def stop(server), do: GenServer.stop(server)

  ## GenServer

  @impl true
  def init(opts) do
    python = Keyword.get(opts, :python, @python)
    script = Keyword.get(opts, :script, @script)
    started_at = System.monotonic_time(:microsecond)

    port =
      Port.open({:spawn_executable, python}, [
        {:packet, 4},
        :binary,
        :exit_status,
        args: [script],
        env: [{~c"LITELLM_LOCAL_MODEL_COST_MAP", ~c"True"}]
      ])

    Port.command(port, ~s({"id":0,"command":"ping","args":{}}))

    # Waiting inside init keeps callers from queueing behind `import dspy`.
    receive do
      {^port, {:data, _first_ping}} ->
        startup_us = System.monotonic_time(:microsecond) - started_at
        {:os_pid, os_pid} = Port.info(port, :os_pid)

        {:ok,
         %{
           port: port,
           next_id: 1,
           pending: %{},
           info: %{os_pid: os_pid, started_at: started_at, startup_us: startup_us}
         }}

      {^port, {:exit_status, status}} ->
        {:stop, {:python_exited, status}}
    after
      Keyword.get(opts, :start_timeout, 120_000) ->
        Port.close(port)
        {:stop, :start_timeout}
    end
  end

  @impl true
  def handle_call({:request, "{" <> rest}, from, %{next_id: id} = s) do
    Port.command(s.port, ["{\"id\":", Integer.to_string(id), ",", rest])
    {:noreply, %{s | next_id: id + 1, pending: Map.put(s.pending, id, from)}}
  end

  def handle_call(:info, _from, s),
    do: {:reply, Map.put(s.info, :pending, map_size(s.pending)), s}

  @impl true
  def handle_info({port, {:data, reply}}, %{port: port} = s) do
    # Python writes compact JSON with "id" first: route on it, the caller decodes.
    with "{\"id\":" <> rest <- reply,
         {id, _} <- Integer.parse(rest),
         {from, pending} when from != nil <- Map.pop(s.pending, id) do
      GenServer.reply(from, {:data, reply})
      {:noreply, %{s | pending: pending}}
    else
      _ -> {:noreply, s}
    end
  end

  def handle_info({port, {:exit_status, status}}, %{port: port} = s) do
    for {_id, from} <- s.pending, do: GenServer.reply(from, {:error, "python exited (#{status})"})
    {:stop, {:python_exited, status}, %{s | pending: %{}}}
  end

  def handle_info(_msg, s), do: {:noreply, s}

  @impl true
  def terminate(_reason, s) do
    if Port.info(s.port) != nil, do: Port.close(s.port)
    :ok
  end
end
