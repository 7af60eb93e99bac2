defmodule :telemetry do
  @moduledoc false
  # A stand-in for the `:telemetry` package (hex cannot be reached from this repository),
  # compiled only for this project's tests. It implements the part of the package's API the
  # library and its tests use, with the package's semantics (telemetry 1.3's
  # src/telemetry.erl), so the same tests pass against the real one:
  #
  # * handler ids are unique: attaching an id again is `{:error, :already_exists}`; event
  #   names are non-empty lists of atoms (else `badarg`); a handler is a 4-arity function;
  # * `execute/3` runs every handler of the event in the calling process; one that raises,
  #   throws or exits is detached, `[:telemetry, :handler, :failure]` is emitted and an
  #   error is logged; the others still run;
  # * `span/3` emits start (`monotonic_time`, `system_time`), then stop (`duration`,
  #   `monotonic_time`, plus the extra measurements of a 3-tuple) or exception (`kind`,
  #   `reason`, `stacktrace` merged into the start metadata), each with the same
  #   `telemetry_span_context`, and re-raises.

  require Logger

  @table :dspex_test_telemetry_handlers

  def attach(id, event_name, function, config),
    do: attach_many(id, [event_name], function, config)

  def attach_many(id, event_names, function, config) when is_function(function, 4) do
    Enum.each(assert_list(event_names), &assert_event_name/1)

    if :erlang.fun_info(function, :type) == {:type, :local} do
      Logger.info("The function passed as a handler with ID #{inspect(id)} is a local function.")
    end

    table = table()

    if :ets.insert_new(table, {{:handler, id}, event_names, function, config}) do
      for name <- event_names, do: :ets.insert(table, {name, id, function, config})
      :ok
    else
      {:error, :already_exists}
    end
  end

  def detach(id) do
    table = table()

    case :ets.take(table, {:handler, id}) do
      [{_, event_names, _, _}] ->
        for name <- event_names, do: :ets.match_delete(table, {name, id, :_, :_})
        :ok

      [] ->
        {:error, :not_found}
    end
  end

  def list_handlers(prefix) when is_list(prefix) do
    for {{:handler, id}, names, function, config} <- :ets.tab2list(table()),
        name <- names,
        List.starts_with?(name, prefix),
        do: %{id: id, event_name: name, function: function, config: config}
  end

  def execute(event_name, measurements), do: execute(event_name, measurements, %{})

  def execute(event_name, value, metadata) when is_number(value) do
    Logger.warning(
      "Using execute/3 with a single event value is deprecated. Use a measurement map instead."
    )

    execute(event_name, %{value: value}, metadata)
  end

  def execute([_ | _] = event_name, measurements, metadata)
      when is_map(measurements) and is_map(metadata) do
    handlers = :ets.lookup(table(), event_name)

    Enum.each(handlers, fn {_, id, function, config} ->
      try do
        function.(event_name, measurements, metadata, config)
      catch
        kind, reason ->
          stacktrace = __STACKTRACE__
          detach(id)

          execute(
            [:telemetry, :handler, :failure],
            %{monotonic_time: System.monotonic_time(), system_time: System.system_time()},
            %{
              event_name: event_name,
              handler_id: id,
              handler_config: config,
              kind: kind,
              reason: reason,
              stacktrace: stacktrace
            }
          )

          Logger.error(
            "Handler #{inspect(id)} has failed and has been detached. " <>
              "Class=#{inspect(kind)}\nReason=#{inspect(reason)}\nStacktrace=#{inspect(stacktrace)}"
          )
      end
    end)
  end

  def span(prefix, start_metadata, span_function) do
    start_time = System.monotonic_time()
    context = make_ref()

    execute(
      prefix ++ [:start],
      %{monotonic_time: start_time, system_time: System.system_time()},
      merge_context(start_metadata, context)
    )

    try do
      span_function.()
    catch
      kind, reason ->
        stacktrace = __STACKTRACE__
        stop_time = System.monotonic_time()

        execute(
          prefix ++ [:exception],
          %{duration: stop_time - start_time, monotonic_time: stop_time},
          merge_context(
            Map.merge(start_metadata, %{kind: kind, reason: reason, stacktrace: stacktrace}),
            context
          )
        )

        :erlang.raise(kind, reason, stacktrace)
    else
      {result, stop_metadata} ->
        stop(prefix, start_time, %{}, stop_metadata, context)
        result

      {result, extra_measurements, stop_metadata} ->
        stop(prefix, start_time, extra_measurements, stop_metadata, context)
        result
    end
  end

  defp stop(prefix, start_time, extra, stop_metadata, context) do
    stop_time = System.monotonic_time()
    standard = %{duration: stop_time - start_time, monotonic_time: stop_time}

    execute(
      prefix ++ [:stop],
      Map.merge(extra, standard),
      merge_context(stop_metadata, context)
    )
  end

  defp merge_context(%{telemetry_span_context: _} = metadata, _context), do: metadata
  defp merge_context(metadata, context), do: Map.put(metadata, :telemetry_span_context, context)

  defp assert_list(names) when is_list(names), do: names
  defp assert_list(other), do: :erlang.error(:badarg, [other])

  defp assert_event_name([_ | _] = name) do
    if Enum.all?(name, &is_atom/1), do: :ok, else: :erlang.error(:badarg, [name])
  end

  defp assert_event_name(other), do: :erlang.error(:badarg, [other])

  # The handler table (a bag: `{event_name, id, function, config}` per event, and
  # `{{:handler, id}, event_names, function, config}` per handler, which makes ids unique),
  # created on first use and owned by a process of its own (the package's is owned by its
  # application's supervisor).
  defp table do
    if :ets.whereis(@table) == :undefined, do: start_owner()
    @table
  end

  defp start_owner do
    parent = self()

    {pid, monitor} =
      spawn_monitor(fn ->
        # Two first uses at once: one creates the table, the other finds it made.
        try do
          :ets.new(@table, [:named_table, :public, :bag, read_concurrency: true])
          send(parent, {:telemetry_table, self()})
          Process.sleep(:infinity)
        rescue
          ArgumentError -> :ok
        end
      end)

    receive do
      {:telemetry_table, ^pid} -> Process.demonitor(monitor, [:flush])
      {:DOWN, ^monitor, :process, ^pid, _} -> :ok
    end
  end
end
