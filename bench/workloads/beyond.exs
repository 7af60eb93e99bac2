defmodule Bench.Beyond do
  @moduledoc """
  7. Beyond one node: peers on this machine (started with `:peer`), a session call there
  against one here, and LM-bound throughput over 1, 2 and 3 nodes. 8. Streaming: 64
  streams at once against a server that sends each answer word by word, 5 ms apart,
  against plain Python threads running `dspy.streamify`.
  """

  import Bench.Measure
  alias Bench.{LMBound, Machine, Plain, Report}
  alias DSPex.Native.Session
  alias DSPex.Native.Test.OpenAIServer

  @streams 64

  def streaming(%{plain: plain, rounds: rounds}) do
    text = "The capital of France is Paris, a city on the Seine with many old bridges."
    {server, lm} = LMBound.loopback_lm(chunk_delay_ms: 5, reply: %{"answer" => text})

    results =
      rounds(rounds,
        ours: fn -> streams(lm) end,
        plain: fn ->
          r = Plain.call(plain, %{"cmd" => "streams", "url" => server.url, "streams" => @streams})
          %{first_ms: r["first_chunk_ms_p50"], per_s: r["chunks_per_s"]}
        end
      )

    OpenAIServer.stop(server)
    w = "8. streaming (#{@streams} streams, 5 ms/chunk)"

    [
      Report.row(w, "time to first chunk, p50", "ms", pick(results, :first_ms)),
      Report.row(w, "chunks/s", "/s", pick(results, :per_s))
    ]
  end

  # One round: every stream opens its session, then streams one answer.
  defp streams(lm) do
    t0 = System.monotonic_time(:microsecond)

    results =
      1..@streams
      |> Task.async_stream(
        fn _ ->
          s = LMBound.open(lm)
          start = System.monotonic_time(:microsecond)

          chunks =
            for {:chunk, _, _} <-
                  Session.stream(s, "p", %{question: "What is 2+2?"}, timeout: 120_000),
                do: System.monotonic_time(:microsecond)

          Session.close(s)
          {(hd(chunks) - start) / 1_000, length(chunks)}
        end,
        max_concurrency: @streams,
        timeout: 180_000
      )
      |> Enum.map(fn {:ok, r} -> r end)

    elapsed = (System.monotonic_time(:microsecond) - t0) / 1.0e6

    %{
      first_ms: Bench.Stats.median(Enum.map(results, &elem(&1, 0))),
      per_s: Enum.sum(Enum.map(results, &elem(&1, 1))) / elapsed
    }
  end

  def cluster(%{quick: q, rounds: rounds}) do
    {_, 0} = System.cmd("epmd", ["-daemon"])
    unless Node.alive?(), do: {:ok, _} = Node.start(:"dspex_bench@127.0.0.1", :longnames)
    {:ok, p1} = DSPex.Native.Peer.start()
    {:ok, p2} = DSPex.Native.Peer.start()
    # The peers are the bench's own processes, not others'.
    for p <- [p1, p2], do: Machine.own(String.to_integer(:erpc.call(p, System, :pid, [])))
    n = if q, do: 2_000, else: 5_000
    local = Session.open!()
    remote = Session.open!(node: p1)

    lat =
      rounds(rounds,
        here: fn -> latency(fn -> {:ok, []} = Session.list_programs(local) end, n, 200) end,
        there: fn -> latency(fn -> {:ok, []} = Session.list_programs(remote) end, n, 200) end
      )

    {server, lm} = LMBound.loopback_lm()
    secs = if q, do: 1.0, else: 2.0
    callers = 256

    configs =
      for nodes <- [[node()], [node(), p1], [node(), p1, p2]] do
        sessions =
          List.to_tuple(
            for i <- 1..callers do
              s = Session.open!(node: Enum.at(nodes, rem(i, length(nodes))), lm: lm)
              :ok = Session.create_program(s, "p", signature: "question -> answer")
              s
            end
          )

        call = fn i ->
          {:ok, _} =
            Session.execute(elem(sessions, i - 1), "p", %{question: "What is 2+2?"},
              timeout: 60_000
            )
        end

        {length(nodes), fn -> throughput(callers, secs, call) end}
      end

    per_s = rounds(rounds, configs)
    OpenAIServer.stop(server)
    for p <- [p1, p2], do: DSPex.Native.Peer.stop(p)
    w = "7. cluster (this machine)"

    here = Map.put(Map.take(lat, meta()), :ours, pick(lat, :p50)[:here])
    there = Map.put(Map.take(lat, meta()), :ours, pick(lat, :p50)[:there])

    [
      Report.row(w, "session call p50, this node", "µs", here),
      Report.row(w, "session call p50, a peer node (:erpc over loopback)", "µs", there)
      | for n <- 1..3 do
          Report.row(
            w,
            "LM-bound calls/s, #{callers} callers over #{n} node(s)",
            "/s",
            Map.put(Map.take(per_s, meta()), :ours, per_s[n])
          )
        end
    ]
  end
end
