defmodule DSPex.Native.TelemetryStandinTest do
  # The :telemetry stand-in (test/support/telemetry.ex) behaves as the package does, so the
  # library's telemetry tests mean the same against either. Nothing here is dspex_native's:
  # these tests would pass against the real package too. Event names are unique per test.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog, only: [with_log: 1]

  def forward(event, measurements, metadata, pid),
    do: send(pid, {:event, event, measurements, metadata})

  def crash(_event, _measurements, _metadata, _config), do: raise("handler bug")

  defp event(suffix), do: [:standin_test, String.to_atom("e#{System.unique_integer()}"), suffix]

  defp attach(events, fun \\ &__MODULE__.forward/4) do
    id = make_ref()
    :ok = :telemetry.attach_many(id, events, fun, self())
    on_exit(fn -> :telemetry.detach(id) end)
    id
  end

  test "a handler gets the events it is attached to, with the config, in the caller" do
    [a, b] = [event(:a), event(:b)]
    attach([a])
    :ok = :telemetry.execute(a, %{n: 1}, %{m: 2})
    :ok = :telemetry.execute(b, %{n: 3}, %{})
    :ok = :telemetry.execute(Enum.drop(a, -1), %{n: 4}, %{})
    assert_received {:event, ^a, %{n: 1}, %{m: 2}}
    refute_received {:event, _, _, _}
  end

  test "handler ids are unique; detaching stops a handler on all its events" do
    [a, b] = [event(:a), event(:b)]
    id = attach([a, b])

    assert :telemetry.attach(id, event(:c), &__MODULE__.forward/4, self()) ==
             {:error, :already_exists}

    assert [%{id: ^id, event_name: ^a, config: config}] = :telemetry.list_handlers(a)
    assert config == self()

    assert :telemetry.detach(id) == :ok
    assert :telemetry.detach(id) == {:error, :not_found}
    :telemetry.execute(a, %{}, %{})
    :telemetry.execute(b, %{}, %{})
    refute_received {:event, _, _, _}
    assert :telemetry.list_handlers(a) == []
  end

  test "event names are non-empty lists of atoms; a handler takes four arguments" do
    fun = &__MODULE__.forward/4
    assert_raise ArgumentError, fn -> :telemetry.attach(make_ref(), [], fun, nil) end
    assert_raise ArgumentError, fn -> :telemetry.attach(make_ref(), ["a"], fun, nil) end
    assert_raise ArgumentError, fn -> :telemetry.attach_many(make_ref(), :a, fun, nil) end

    assert_raise FunctionClauseError, fn ->
      :telemetry.attach(make_ref(), [:a], fn _, _, _ -> :ok end, nil)
    end
  end

  test "a handler that fails is detached, reported and logged; the others still run" do
    e = event(:a)
    bad = attach([e], &__MODULE__.crash/4)
    attach([e])
    failures = attach([[:telemetry, :handler, :failure]])

    {:ok, log} = with_log(fn -> :telemetry.execute(e, %{n: 1}, %{}) end)

    assert_received {:event, ^e, %{n: 1}, %{}}

    assert_received {:event, [:telemetry, :handler, :failure], %{monotonic_time: _},
                     %{handler_id: ^bad, event_name: ^e, kind: :error, reason: %RuntimeError{}}}

    assert log =~ "has failed and has been detached"
    assert :telemetry.detach(bad) == {:error, :not_found}
    :telemetry.detach(failures)
  end

  test "span: start, then stop with the duration and the extra measurements" do
    prefix = Enum.drop(event(:x), -1)
    attach([prefix ++ [:start], prefix ++ [:stop]])

    assert :telemetry.span(prefix, %{a: 1}, fn -> {:result, %{b: 2}} end) == :result
    assert :telemetry.span(prefix, %{a: 1}, fn -> {:again, %{bytes: 9}, %{b: 3}} end) == :again

    start = prefix ++ [:start]
    stop = prefix ++ [:stop]

    assert_received {:event, ^start, %{monotonic_time: t0, system_time: _}, %{a: 1} = m1}
    assert_received {:event, ^stop, %{duration: d, monotonic_time: t1}, %{b: 2} = m2}
    assert m1.telemetry_span_context == m2.telemetry_span_context
    assert d == t1 - t0 and d >= 0
    refute Map.has_key?(m2, :a)

    assert_received {:event, ^start, _, %{telemetry_span_context: ctx}}

    assert_received {:event, ^stop, %{bytes: 9, duration: _},
                     %{b: 3, telemetry_span_context: ^ctx}}
  end

  test "span: an exception, a throw or an exit is reported with the start metadata and re-raised" do
    prefix = Enum.drop(event(:x), -1)
    exception = prefix ++ [:exception]
    attach([exception])
    given = make_ref()

    assert_raise RuntimeError, "boom", fn ->
      :telemetry.span(prefix, %{a: 1, telemetry_span_context: given}, fn -> raise "boom" end)
    end

    assert_received {:event, ^exception, %{duration: _, monotonic_time: _},
                     %{a: 1, kind: :error, reason: %RuntimeError{}, stacktrace: [_ | _]} = meta}

    assert meta.telemetry_span_context == given

    assert catch_throw(:telemetry.span(prefix, %{}, fn -> throw(:ball) end)) == :ball
    assert_received {:event, ^exception, _, %{kind: :throw, reason: :ball}}
    assert catch_exit(:telemetry.span(prefix, %{}, fn -> exit(:bye) end)) == :bye
    assert_received {:event, ^exception, _, %{kind: :exit, reason: :bye}}
  end

  test "execute with a bare number is the deprecated form of %{value: n}" do
    e = event(:a)
    attach([e])
    {:ok, log} = with_log(fn -> :telemetry.execute(e, 5, %{}) end)
    assert_received {:event, ^e, %{value: 5}, %{}}
    assert log =~ "deprecated"
  end
end
