defmodule Bench.LMBound do
  @moduledoc """
  3. LM-bound calls through `dspy.LM`/litellm against an OpenAI-compatible server on
  127.0.0.1 that answers after 20 ms: 1, 8, 64 and 256 callers, one session each, against
  as many plain Python threads (one program and `dspy.context` each) and, at 8 callers,
  the port bridge. Sessions and threads are made once per caller count and reused by
  every round.
  """

  import Bench.Measure
  alias Bench.{Plain, Report}
  alias DSPex.Bench.PortBridge
  alias DSPex.Native.Session
  alias DSPex.Native.Test.OpenAIServer

  @delay_ms 20
  @question %{question: "What is 2+2?"}

  # The 20 ms server, and an LM spec that reaches it through dspy.LM/litellm (no cache, no
  # retries: every call hits the server).
  def loopback_lm(opts \\ [delay_ms: @delay_ms]) do
    reply = Keyword.get(opts, :reply, %{"answer" => "4"})

    {:ok, server} =
      OpenAIServer.start(
        [record: false, reply: fn _ -> OpenAIServer.dspy_reply(reply) end] ++
          Keyword.delete(opts, :reply)
      )

    {server,
     {"openai/gpt-4o-mini", api_base: server.url, api_key: "test", cache: false, num_retries: 0}}
  end

  def run(%{port: port, plain: plain, quick: q, rounds: rounds}) do
    {server, lm} = loopback_lm()
    secs = if q, do: 1.0, else: 2.0

    cpu =
      Plain.call(plain, %{
        "cmd" => "lm_cpu",
        "url" => server.url,
        "n" => if(q, do: 100, else: 300)
      })

    cpu_ms = cpu["cpu_ms_per_call"]
    w = "3. LM-bound (#{@delay_ms} ms server)"

    rows =
      for c <- [1, 8, 64, 256] do
        sessions = List.to_tuple(for _ <- 1..c, do: open(lm))

        call = fn i ->
          {:ok, _} = Session.execute(elem(sessions, i - 1), "p", @question, timeout: 60_000)
        end

        %{"threads" => ^c} =
          Plain.call(plain, %{"cmd" => "lm_threads", "url" => server.url, "threads" => c})

        contenders =
          [
            ours: fn -> throughput(c, secs, call) end,
            plain: fn ->
              Plain.call(plain, %{"cmd" => "lm_round", "seconds" => secs})["calls_per_s"]
            end
          ] ++ if(c == 8, do: [port: port_lm(port, server.url, c, secs)], else: [])

        results = rounds(rounds, contenders)
        Plain.call(plain, %{"cmd" => "lm_stop"})
        for i <- 1..c, do: Session.close(elem(sessions, i - 1))

        Report.row(w, "calls/s, #{c} callers", "/s", results,
          target: if(c >= 8, do: {:ratio, :plain, :>=, 1.0}),
          target_text: if(c >= 8, do: "≥ 1.0× plain Python threads"),
          note:
            "#{c} callers / #{@delay_ms} ms = #{Report.num(c * 1_000 / @delay_ms)}/s if the delay were all"
        )
      end

    OpenAIServer.stop(server)

    cpu_row =
      Report.row(w, "Python CPU per LM call", "ms", %{plain: [cpu_ms]},
        note:
          "one thread, process CPU time ÷ calls; 1 / this = #{Report.num(1_000 / cpu_ms)}/s " <>
            "(threads do better: part of a call runs without the GIL)"
      )

    [cpu_row | rows]
  end

  def open(lm) do
    s = Session.open!(lm: lm)
    :ok = Session.create_program(s, "p", signature: "question -> answer")
    s
  end

  # The port bridge's turn: `callers` processes through its one Python loop.
  defp port_lm(port, url, callers, secs) do
    kwargs = %{"api_base" => url, "api_key" => "test", "cache" => false, "num_retries" => 0}
    lm = %{"kind" => "lm", "model" => "openai/gpt-4o-mini", "kwargs" => kwargs}
    {:ok, _} = PortBridge.call(port, "reset", %{})
    args = %{"id" => "lm", "signature" => "question -> answer", "lm" => lm}
    {:ok, _} = PortBridge.call(port, "create_program", args)
    inputs = %{"id" => "lm", "inputs" => %{"question" => @question.question}}

    fn ->
      throughput(callers, secs, fn _ -> {:ok, _} = PortBridge.call(port, "execute", inputs) end)
    end
  end
end
