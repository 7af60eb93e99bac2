defmodule DSPex.Native.TelemetryTest do
  # The :telemetry events of calls and LM calls, with their measurements and metadata
  # (test/support/telemetry.ex stands in for the package). Each test keeps only the events
  # of its own session (by its unique name).
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers, only: [dummy: 1]
  alias DSPex.Native.{Error, Session}
  alias DSPex.Native.Test.{OpenAIServer, TelemetryEvents}

  @moduletag timeout: 180_000

  @call [
    [:dspex_native, :call, :start],
    [:dspex_native, :call, :stop],
    [:dspex_native, :call, :exception]
  ]
  @lm [:dspex_native, :lm, :stop]

  @slow """
  import time
  import dspy

  class Slow(dspy.Module):
      def forward(self, seconds):
          end = time.monotonic() + float(seconds)
          while time.monotonic() < end:
              time.sleep(0.005)
          return dspy.Prediction(answer="late")
  """

  @fan_out """
  import dspy

  class FanOut(dspy.Module):
      def __init__(self):
          super().__init__()
          self.predict = dspy.Predict("question -> answer")

      def forward(self, question):
          calls = [(self.predict, {"question": f"{question} {n}"}) for n in range(3)]
          return dspy.Parallel(num_threads=3, disable_progress_bar=True)(calls)[0]
  """

  setup do
    name = "telemetry-#{System.unique_integer([:positive])}"
    id = TelemetryEvents.attach([@lm | @call], &(&1[:session_name] == name))
    %{name: name, id: id}
  end

  defp receive_call(id, op) do
    assert_receive {:telemetry, ^id, [:dspex_native, :call, :start], start, %{op: ^op} = meta1},
                   30_000

    assert_receive {:telemetry, ^id, [:dspex_native, :call, kind], stop, %{op: ^op} = meta2},
                   60_000

    assert meta1.telemetry_span_context == meta2.telemetry_span_context
    {start, meta1, kind, stop, meta2}
  end

  defp native(ms), do: System.convert_time_unit(ms, :millisecond, :native)

  test "open, create_program and execute: a span each, timed, with the session and program",
       %{name: name, id: id} do
    s = Session.open!(name: name, lm: dummy(%{"answer" => "Paris"}))
    :ok = Session.create_program(s, "p", signature: "question -> answer")
    {:ok, _} = Session.execute(s, "p", %{question: "?"})

    {start, meta, :stop, stop, stop_meta} = receive_call(id, :open)
    assert is_integer(start.system_time) and is_integer(start.monotonic_time)
    assert %{session_id: nil, session_name: ^name, program_id: nil} = meta
    assert meta.node == node()
    # The id of an opened session is known when it answers.
    assert %{session_id: sid, result: :ok} = stop_meta
    assert sid == s.id
    assert is_integer(stop.queue_time) and is_integer(stop.python_time)

    {_, meta, :stop, _, stop_meta} = receive_call(id, :create_program)
    assert %{session_id: ^sid, program_id: "p"} = meta
    assert stop_meta.result == :ok

    {_, meta, :stop, stop, stop_meta} = receive_call(id, :execute)
    assert %{session_id: ^sid, session_name: ^name, program_id: "p", node: node} = meta
    assert node == node()
    assert %{result: :ok, program_id: "p"} = stop_meta
    refute Map.has_key?(stop_meta, :error)
    assert %{duration: duration, monotonic_time: _, queue_time: queue, python_time: python} = stop
    assert queue >= 0 and python > 0
    # The worker's time is part of the call's (its clock is the OS's monotonic one too).
    assert queue + python <= duration * 1.01 + native(1)
  end

  test "an error is a stop with the reason, and Python's time when Python answered",
       %{name: name, id: id} do
    s = Session.open!(name: name, lm: dummy(%{"answer" => "x"}))
    assert {:error, %Error{reason: :not_found}} = Session.execute(s, "missing", %{q: "?"})

    {_, _, :stop, _, _} = receive_call(id, :open)
    {_, meta, :stop, stop, stop_meta} = receive_call(id, :execute)
    assert meta.program_id == "missing"
    assert %{result: {:error, :not_found}, error: %Error{reason: :not_found}} = stop_meta
    assert is_integer(stop.python_time) and is_integer(stop.queue_time)
  end

  test "a timeout is a stop with {:error, :timeout} after the deadline, without worker times",
       %{name: name, id: id} do
    s = Session.open!(name: name)
    {:ok, ["Slow"]} = Session.load_module(s, "slow", @slow)
    :ok = Session.create_program(s, "slow", module: {:custom, "Slow"})

    assert {:error, %Error{reason: :timeout}} =
             Session.execute(s, "slow", %{seconds: 30}, timeout: 200)

    for op <- [:open, :load_module, :create_program], do: receive_call(id, op)
    {_, _, :stop, stop, stop_meta} = receive_call(id, :execute)
    assert %{result: {:error, :timeout}, error: %Error{reason: :timeout}} = stop_meta
    assert stop.duration >= native(200)
    refute Map.has_key?(stop, :queue_time) or Map.has_key?(stop, :python_time)
  end

  test "a call that raises in the caller is an :exception, re-raised", %{name: name, id: id} do
    # A hand-made session: the NIF rejects its resource (badarg) before anything is queued.
    fake = %Session{resource: make_ref(), id: -1, name: name}
    assert_raise ArgumentError, fn -> Session.execute(fake, "p", %{q: "?"}) end

    {start, meta, :exception, exception, exception_meta} = receive_call(id, :execute)
    assert is_integer(start.system_time)
    assert %{session_id: -1, program_id: "p"} = meta
    assert %{kind: :error, reason: %ArgumentError{}, stacktrace: [_ | _]} = exception_meta
    assert is_integer(exception.duration)
  end

  test "a stream halted by its consumer ends its span with :halted", %{name: name, id: id} do
    {:ok, server} =
      OpenAIServer.start(
        chunk_delay_ms: 50,
        reply: fn _ -> OpenAIServer.dspy_reply(%{"answer" => "one two three four five six"}) end
      )

    lm = {"openai/test-model", api_base: server.url, api_key: "k", cache: false}
    s = Session.open!(name: name, lm: lm)
    :ok = Session.create_program(s, "qa", signature: "question -> answer")
    stream = Session.stream(s, "qa", %{question: "?"}, timeout: 120_000)
    assert [{:chunk, "answer", _}] = Enum.take(stream, 1)

    {_, meta, :stop, stop, stop_meta} = receive_call(id, :stream)
    assert meta.program_id == "qa"
    assert stop_meta.result == :halted
    assert is_integer(stop.duration)
  end

  test "an LM call over HTTP: model, tokens and duration, with the session and program",
       %{name: name, id: id} do
    {:ok, server} =
      OpenAIServer.start(reply: fn _ -> OpenAIServer.dspy_reply(%{"answer" => "Paris"}) end)

    lm = {"openai/gpt-4o-mini", api_base: server.url, api_key: "k", cache: false, num_retries: 0}
    s = Session.open!(name: name, lm: lm)
    :ok = Session.create_program(s, "qa", signature: "question -> answer")

    assert {:ok, %{"answer" => "Paris"}} =
             Session.execute(s, "qa", %{question: "Capital of France?"}, timeout: 120_000)

    assert_receive {:telemetry, ^id, @lm, measurements, meta}, 10_000
    assert %{model: "openai/gpt-4o-mini", op: :execute, program_id: "qa"} = meta
    assert %{session_id: sid, session_name: ^name, node: node} = meta
    assert sid == s.id and node == node()

    # The server counts a token per 4 bytes: of the prompt's messages, and of the reply.
    [request] = OpenAIServer.requests(server)

    prompt =
      request.messages |> Enum.map(&max(1, div(byte_size(&1["content"]) + 3, 4))) |> Enum.sum()

    reply = OpenAIServer.dspy_reply(%{"answer" => "Paris"})
    completion = max(1, div(byte_size(reply) + 3, 4))

    assert %{prompt_tokens: ^prompt, completion_tokens: ^completion, total_tokens: total} =
             measurements

    assert total == prompt + completion
    assert measurements.duration > 0
    if Map.has_key?(measurements, :cost), do: assert(is_number(measurements.cost))
    refute_receive {:telemetry, ^id, @lm, _, _}, 100
  end

  test "LM calls DSPy makes on threads of its own are reported too", %{name: name, id: id} do
    s = Session.open!(name: name, lm: dummy(%{"answer" => "x"}))
    {:ok, ["FanOut"]} = Session.load_module(s, "fan_out", @fan_out)
    :ok = Session.create_program(s, "fan", module: {:custom, "FanOut"})
    {:ok, _} = Session.execute(s, "fan", %{question: "?"})

    for _ <- 1..3 do
      assert_receive {:telemetry, ^id, @lm, %{duration: d}, %{program_id: "fan", model: m}}
      assert d > 0 and is_binary(m)
    end

    refute_receive {:telemetry, ^id, @lm, _, _}, 100
  end
end
