defmodule Bench.PerCall do
  @moduledoc """
  1. A round trip that does nothing in Python (`DSPex.Native.ping/1` against the port
  bridge's ping); 2. one `dspy.Predict` with DummyLM, against the same call in plain
  Python and through the port bridge.
  """

  import Bench.Measure
  alias Bench.{Plain, Report}
  alias DSPex.Bench.PortBridge
  alias DSPex.Native.Session

  @question %{question: "What is 2+2?"}

  def dummy, do: {:dummy, %{"" => %{"answer" => "x"}}}
  def dummy_json, do: %{"kind" => "dummy", "answers" => %{"" => %{"answer" => "x"}}}

  def round_trip(%{port: port, quick: q, rounds: rounds}) do
    n = if q, do: 5_000, else: 20_000
    secs = if q, do: 0.5, else: 1.5
    ping = fn -> {:ok, nil} = DSPex.Native.ping(nil) end
    port_ping = fn -> {:ok, _} = PortBridge.call(port, "ping", %{}) end

    # The port bridge takes ~10× longer per ping: a quarter of the calls keeps turns short.
    lat =
      rounds(rounds,
        ours: fn -> latency(ping, n, 500) end,
        port: fn -> latency(port_ping, div(n, 4), 100) end
      )

    per_s =
      rounds(rounds,
        ours: fn -> throughput(64, secs, fn _ -> ping.() end) end,
        port: fn -> throughput(64, secs, fn _ -> port_ping.() end) end
      )

    w = "1. round trip"

    [
      Report.row(w, "p50 latency, 1 process", "µs", pick(lat, :p50), target: {:abs, :<=, 10}),
      Report.row(w, "p99 latency, 1 process", "µs", pick(lat, :p99), target: {:abs, :<=, 50}),
      Report.row(w, "calls/s from 64 processes", "/s", per_s, target: {:ratio, :port, :>=, 2.0})
    ]
  end

  def predict(%{port: port, plain: plain, quick: q, rounds: rounds}) do
    n = if q, do: 300, else: 1_000
    s = Session.open!(lm: dummy())
    :ok = Session.create_program(s, "p", signature: "question -> answer")
    args = %{"id" => "p", "signature" => "question -> answer", "lm" => dummy_json()}
    {:ok, _} = PortBridge.call(port, "create_program", args)
    port_args = %{"id" => "p", "inputs" => %{"question" => @question.question}}

    results =
      rounds(rounds,
        ours: fn -> latency(fn -> {:ok, _} = Session.execute(s, "p", @question) end, n, 50) end,
        plain: fn ->
          r = Plain.call(plain, %{"cmd" => "predict", "n" => n, "warm" => 50})
          %{p50: r["p50_us"], p99: r["p99_us"]}
        end,
        port: fn ->
          latency(fn -> {:ok, _} = PortBridge.call(port, "execute", port_args) end, n, 50)
        end
      )

    {:ok, _} = PortBridge.call(port, "reset", %{})
    Session.close(s)
    w = "2. one Predict (DummyLM)"

    [
      Report.row(w, "p50 latency", "µs", pick(results, :p50), target: {:ratio, :plain, :<=, 1.10}),
      Report.row(w, "p99 latency", "µs", pick(results, :p99))
    ]
  end
end
