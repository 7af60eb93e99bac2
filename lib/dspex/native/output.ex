defmodule DSPex.Native.Output do
  @moduledoc false
  # Python's output during a call, on its way to the caller's group leader and Logger.
  #
  # The caller never waits on a device: a slow, mute or dead group leader would otherwise
  # hold the call past its deadline, or crash it. The caller sends each io request itself
  # without waiting, so its own later requests (capture_io reading what was captured) stay
  # in order behind them, and the replies go to a sink process, which reports each written
  # chunk to the call's tag. The tag is an alias, deactivated when the call ends, so no
  # late report can stray into the caller's mailbox.
  #
  # At most @in_flight bytes are unanswered at a time. Output beyond that waits in a buffer
  # of at most @buffered bytes and goes as one chunk when the device catches up; past that
  # it is dropped and counted, and one line says how much. When the caller's own mailbox
  # floods (Python prints faster than anything can be written), output is dropped at once,
  # so the caller keeps up with its mailbox and still cancels the job at its deadline.
  # Log records go to Logger from the caller (whose own overload protection applies), except
  # in a flood, when they are dropped and counted too.

  require Logger

  @in_flight 64 * 1024
  @buffered 64 * 1024
  @flood 5_000
  # How long a sink waits for the last replies of a device that stopped answering.
  @sink_patience 5_000

  defstruct [
    :tag,
    :meta,
    sink: nil,
    devices: %{},
    in_flight: 0,
    buffer: [],
    buffered: 0,
    dropped: 0,
    dropped_writes: 0,
    logs_dropped: 0
  ]

  @type t :: %__MODULE__{}

  @doc false
  # `tag` is the call's alias; `meta` the Logger metadata of its log records.
  @spec new(reference(), keyword()) :: t()
  def new(tag, meta), do: %__MODULE__{tag: tag, meta: meta}

  @doc false
  # One notification from Python: `%{"kind" => "output", "stream" => _, "text" => _}` or
  # `%{"kind" => "log", "level" => _, "logger" => _, "message" => _}`.
  @spec handle(term(), t()) :: t()
  def handle(%{"kind" => "output", "stream" => stream, "text" => text}, out)
      when is_binary(text) do
    device = if stream == "stderr", do: :stderr, else: :stdout

    cond do
      flooded?() -> drop(out, text)
      true -> write(out, device, text)
    end
  end

  def handle(%{"kind" => "log", "level" => level, "logger" => logger, "message" => message}, out)
      when is_binary(message) do
    if flooded?() do
      %{out | logs_dropped: out.logs_dropped + 1}
    else
      Logger.log(logger_level(level), message, [python_logger: logger] ++ out.meta)
      out
    end
  end

  def handle(_other, out), do: out

  @doc false
  # A report from the sink: `{:written, bytes}` or `{:down, device}`.
  @spec report(term(), t()) :: t()
  def report({:written, bytes}, out) do
    out = %{out | in_flight: max(out.in_flight - bytes, 0)}
    if out.in_flight == 0, do: flush(out), else: out
  end

  def report({:down, device}, out) do
    # What was in flight to it is lost; nothing more goes there.
    devices = Map.put(out.devices, device, :down)
    flush(%{out | devices: devices, in_flight: 0})
  end

  def report(_other, out), do: out

  @doc false
  # The call is over: what waits goes out now, with a line about what was dropped; the
  # sink leaves once the last of it is written (or its device stops answering).
  @spec finish(t()) :: :ok
  def finish(out) do
    out = flush(out)

    if out.logs_dropped > 0 do
      Logger.warning(
        "dspex_native: #{out.logs_dropped} Python log records dropped: they came faster than they could be handled",
        out.meta
      )
    end

    if out.sink, do: send(out.sink, {:done, out.in_flight})
    :ok
  end

  defp flooded? do
    {:message_queue_len, n} = Process.info(self(), :message_queue_len)
    n > @flood
  end

  defp write(out, device, text) do
    size = byte_size(text)

    cond do
      out.in_flight + size <= @in_flight or out.in_flight == 0 ->
        request(out, device, text, size)

      out.buffered + size <= @buffered ->
        %{out | buffer: [{device, text} | out.buffer], buffered: out.buffered + size}

      true ->
        drop(out, text)
    end
  end

  defp drop(out, text),
    do: %{out | dropped: out.dropped + byte_size(text), dropped_writes: out.dropped_writes + 1}

  # The buffer, one request per run of the same device, then the note about drops.
  defp flush(%{buffer: [], dropped: 0} = out), do: out

  defp flush(out) do
    chunks =
      out.buffer
      |> Enum.reverse()
      |> Enum.chunk_by(&elem(&1, 0))
      |> Enum.map(fn [{device, _} | _] = run -> {device, Enum.map(run, &elem(&1, 1))} end)

    out = %{out | buffer: [], buffered: 0}

    out =
      Enum.reduce(chunks, out, fn {device, text}, out ->
        request(out, device, text, IO.iodata_length(text))
      end)

    if out.dropped > 0 do
      note =
        "\n[dspex_native: #{out.dropped} bytes of Python output dropped (#{out.dropped_writes} writes): " <>
          "the group leader did not keep up]\n"

      request(%{out | dropped: 0, dropped_writes: 0}, :stdout, note, byte_size(note))
    else
      out
    end
  end

  # Sends one io request to `device`; its reply goes to the sink.
  defp request(out, device, text, size) do
    out = ensure_sink(out)

    case Map.get(out.devices, device) do
      pid when is_pid(pid) ->
        send(pid, {:io_request, out.sink, {:dspex_output, size}, {:put_chars, :unicode, text}})
        %{out | in_flight: out.in_flight + size}

      _down_or_missing ->
        out
    end
  end

  defp ensure_sink(%{sink: nil, tag: tag} = out) do
    devices = %{stdout: Process.group_leader(), stderr: Process.whereis(:standard_error)}
    caller = self()
    sink = spawn(fn -> sink(caller, tag, devices) end)
    %{out | sink: sink, devices: devices}
  end

  defp ensure_sink(out), do: out

  # -- the sink (a process of its own) -----------------------------------------------------

  defp sink(caller, tag, devices) do
    Process.monitor(caller)

    watched =
      for {device, pid} <- devices, is_pid(pid), into: %{}, do: {Process.monitor(pid), device}

    sink_loop(tag, watched, :running)
  end

  # `left` is :running until the caller is done, then the bytes still to be answered.
  defp sink_loop(_tag, _watched, left) when is_integer(left) and left <= 0, do: :ok

  defp sink_loop(tag, watched, left) do
    receive do
      {:io_reply, {:dspex_output, bytes}, _reply} ->
        send(tag, {tag, {:written, bytes}})
        sink_loop(tag, watched, if(left == :running, do: left, else: left - bytes))

      {:done, unanswered} ->
        sink_loop(tag, watched, unanswered)

      {:DOWN, ref, :process, _pid, _reason} ->
        case Map.pop(watched, ref) do
          # The caller is gone: nobody to report to.
          {nil, _} ->
            :ok

          {device, watched} ->
            send(tag, {tag, {:down, device}})
            if left == :running, do: sink_loop(tag, watched, left), else: :ok
        end
    after
      if(left == :running, do: :infinity, else: @sink_patience) -> :ok
    end
  end

  defp logger_level(level) when level in ["CRITICAL", "FATAL"], do: :critical
  defp logger_level("ERROR"), do: :error
  defp logger_level(level) when level in ["WARNING", "WARN"], do: :warning
  defp logger_level("INFO"), do: :info
  defp logger_level(_), do: :debug
end
