defmodule DSPex.Native.Telemetry do
  @moduledoc """
  The [`:telemetry`](https://hexdocs.pm/telemetry) events dspex_native emits.

  dspex_native does not depend on `:telemetry`: it emits events when the application that
  uses it has `:telemetry` loaded (any dependency such as Phoenix, Ecto or Finch brings
  it), and costs one `persistent_term` read per call otherwise. Whether it is loaded is
  checked once, when `:dspex_native` starts. Times are in `:native` units
  (`System.convert_time_unit/3` turns them into others).

  | event | measurements | metadata | when |
  | --- | --- | --- | --- |
  | `[:dspex_native, :call, :start]` | `system_time`, `monotonic_time` | `op`, `session_id`, `session_name`, `program_id`, `node`, `telemetry_span_context` | a call to Python starts: every `Session` function but `close/1`, every `Py` call, `DSPex.Native.stats/1`, `ping/2`, `await_ready/1` |
  | `[:dspex_native, :call, :stop]` | `duration`, `monotonic_time`; `queue_time` (waiting for a worker) and `python_time` (on the worker) when Python answered | as start, plus `result`: `:ok`, `{:error, reason}` (then also `error`, the `DSPex.Native.Error`) or `:halted` (a stream its consumer stopped early) | the call returns, answered or not: errors, timeouts (`{:error, :timeout}`) and refusals (`:overloaded`, `:not_started`) included; a stream's job stops with its outputs, its error, or `:halted` |
  | `[:dspex_native, :call, :exception]` | `duration`, `monotonic_time` | as start, plus `kind`, `reason`, `stacktrace` | the call raised, threw or exited in the calling process instead of returning (an argument the NIF rejects as `badarg`, say a hand-made `%Session{}`), which is re-raised |
  | `[:dspex_native, :lm, :stop]` | `duration`, `prompt_tokens`, `completion_tokens`, `total_tokens`, `cost` (each when the LM reported it) | `model`, `op`, `session_id`, `session_name`, `program_id`, `node` | an LM call of a session's job answered (cache hits included), also one made on a thread the job started (`dspy.Parallel`, `Evaluate`) |
  | `[:dspex_native, :runtime, :ready]` | `duration` (from start to ready), `init_time` (CPython), `import_time` (`dspex_bridge` and DSPy) | `python_version`, `dspy_version`, `venv`, `node` | Python is ready, once per BEAM |
  | `[:dspex_native, :runtime, :warm]` | `duration` | `error` (`nil`, or why litellm failed to import), `node` | the LM client stack is imported in the background (`warm: true`, the default) |
  | `[:dspex_native, :pool, :grow]` | `workers_alive`, `added` | `node` | the pool added workers because calls waited with every worker busy |
  | `[:dspex_native, :pool, :shrink]` | `workers_alive`, `retired` | `node` | an extra worker retired after 10 s idle |

  `op` is the operation as an atom (`:execute`, `:create_program`, `:open`, `:py_call`,
  `:ping`...). `session_id` and `session_name` are `nil` for calls that belong to no
  session; `program_id` is `nil` for operations that name no program. A call to a session
  on another node is reported on that node (where its job runs). Call and LM events are
  emitted by the process that waits for the job (the caller, or a stream's own process);
  runtime and pool events by `DSPex.Native.Events`.

  A call killed by an exit signal while it waits (its process was killed) emits a start
  without a stop, as with `:telemetry.span/3`.
  """

  alias DSPex.Native.{Error, NIF}

  # :telemetry is the host application's; it may not exist at compile time.
  @compile {:no_warn_undefined, :telemetry}

  @enabled {__MODULE__, :enabled}

  @lm_measurements for k <- ~w(prompt_tokens completion_tokens total_tokens cost)a,
                       do: {Atom.to_string(k), k}

  @doc """
  Whether events are emitted: `:telemetry` is loaded. Checked once, then cached.

  ## Examples

      iex> is_boolean(DSPex.Native.Telemetry.enabled?())
      true
  """
  @spec enabled?() :: boolean()
  def enabled? do
    case :persistent_term.get(@enabled, nil) do
      nil ->
        enabled = Code.ensure_loaded?(:telemetry) and function_exported?(:telemetry, :span, 3)
        :persistent_term.put(@enabled, enabled)
        enabled

      enabled ->
        enabled
    end
  end

  @doc false
  # A `[:dspex_native, :call, ...]` span around `fun`, which returns
  # `{result, {queue_ms, python_ms} | nil}` (see `DSPex.Native.Job`); returns `result`.
  def call(request, metadata, fun) do
    start = call_metadata(request, metadata)

    :telemetry.span([:dspex_native, :call], start, fn ->
      {result, timing} = fun.()
      {result, timing_measurements(timing), stop_metadata(start, request, result)}
    end)
  end

  @doc false
  # One LM call a job reported (`%{"kind" => "lm"}`, see `dspex_bridge.observe`).
  def lm_call(report, request, metadata) do
    if enabled?() do
      measurements =
        for {key, name} <- @lm_measurements,
            is_number(report[key]),
            into: %{},
            do: {name, report[key]}

      measurements =
        if is_number(report["duration_ms"]),
          do: Map.put(measurements, :duration, native(report["duration_ms"])),
          else: measurements

      meta = Map.put(call_metadata(request, metadata), :model, report["model"])
      :telemetry.execute([:dspex_native, :lm, :stop], measurements, meta)
    end

    :ok
  end

  @doc false
  # An event outside any call (runtime, pool): emitted only if `:telemetry` is loaded.
  def execute(event, measurements, metadata) do
    if enabled?(),
      do: :telemetry.execute(event, measurements, Map.put(metadata, :node, node()))

    :ok
  end

  @doc false
  # Float milliseconds (the protocol's unit, `Job.time_unit/0`) as native time units.
  @spec native(number()) :: integer()
  def native(ms), do: System.convert_time_unit(round(ms * 1000), :microsecond, :native)

  defp call_metadata({:session_call, [_resource, op, args]}, metadata) do
    %{
      op: String.to_atom(op),
      session_id: metadata[:session],
      session_name: metadata[:session_name],
      program_id: program_id(args),
      node: node()
    }
  end

  defp call_metadata({:session_open, [name | _]}, _metadata),
    do: %{op: :open, session_id: nil, session_name: name, program_id: nil, node: node()}

  defp call_metadata({:global_call, [op, _args]}, _metadata),
    do: %{
      op: String.to_atom(op),
      session_id: nil,
      session_name: nil,
      program_id: nil,
      node: node()
    }

  defp program_id(%{"id" => id}) when is_binary(id), do: id
  defp program_id(_args), do: nil

  defp timing_measurements({queue_ms, python_ms}),
    do: %{queue_time: native(queue_ms), python_time: native(python_ms)}

  defp timing_measurements(nil), do: %{}

  defp stop_metadata(start, request, {:ok, resource}) do
    # An opened session's id is known only now.
    case request do
      {:session_open, _} -> %{start | session_id: elem(NIF.session_meta(resource), 0)}
      _ -> start
    end
    |> Map.put(:result, :ok)
  end

  defp stop_metadata(start, _request, {:error, %Error{reason: reason} = error}),
    do: Map.merge(start, %{result: {:error, reason}, error: error})

  defp stop_metadata(start, _request, :halted), do: Map.put(start, :result, :halted)
end
