# The benchmark: `make bench` (or `mix run bench/run.exs [--quick]`).
#
# Every workload runs against dspex_native and, in the same run, against two baselines:
# plain Python (the same DSPy call with no bridge: the floor) and the port bridge (one
# Python process behind a port with a global program dict: the design this library
# replaces). Figures are medians of repeated runs; latency rows also give p99. Prints a
# table and writes bench/results.json. `--quick` is a smoke run of under two minutes.

Code.require_file("../test/support/openai_server.ex", __DIR__)
Code.require_file("port_bridge.ex", __DIR__)

defmodule Bench do
  alias DSPex.Bench.PortBridge
  alias DSPex.Native.Session
  alias DSPex.Native.Test.OpenAIServer
  alias DSPex.Native.Test.OpenAIServer.JSON

  def python, do: Path.join(DSPex.Native.Environment.venv(), "bin/python")

  # -- statistics ---------------------------------------------------------------------------

  def median(xs), do: percentile(xs, 0.5)

  def percentile(xs, p) do
    sorted = Enum.sort(xs)
    Enum.at(sorted, min(length(sorted) - 1, trunc(length(sorted) * p)))
  end

  # Latencies (µs) of `n` sequential calls of `fun`, after `warm` unmeasured ones.
  def latencies(fun, n, warm) do
    for _ <- 1..warm, do: fun.()

    for _ <- 1..n do
      t0 = System.monotonic_time(:nanosecond)
      fun.()
      (System.monotonic_time(:nanosecond) - t0) / 1_000
    end
  end

  # Median p50 and median p99 over `rounds` rounds of `n` calls.
  def latency(fun, n, rounds, warm \\ 200) do
    runs = for _ <- 1..rounds, do: latencies(fun, n, warm)
    %{p50: median(Enum.map(runs, &median/1)), p99: median(Enum.map(runs, &percentile(&1, 0.99)))}
  end

  # Calls per second of `procs` processes each calling `fun` for `seconds`.
  def throughput(procs, seconds, fun) do
    deadline = System.monotonic_time(:millisecond) + round(seconds * 1_000)
    t0 = System.monotonic_time(:microsecond)

    count =
      1..procs
      |> Enum.map(fn i -> Task.async(fn -> loop(fun, i, deadline, 0) end) end)
      |> Task.await_many(:infinity)
      |> Enum.sum()

    count / ((System.monotonic_time(:microsecond) - t0) / 1.0e6)
  end

  defp loop(fun, i, deadline, n) do
    if System.monotonic_time(:millisecond) >= deadline do
      n
    else
      fun.(i)
      loop(fun, i, deadline, n + 1)
    end
  end

  def rss_mb do
    [_, kb] = Regex.run(~r/VmRSS:\s+(\d+) kB/, File.read!("/proc/self/status"))
    String.to_integer(kb) / 1024
  end

  def settle do
    for pid <- Process.list(), do: :erlang.garbage_collect(pid)
    wait(fn -> DSPex.Native.stats().releases_queued == 0 end, 30_000)
  end

  # Polls `fun` every millisecond until it is true or `timeout` ms have passed.
  def wait(fun, timeout), do: wait(fun, System.monotonic_time(:millisecond) + timeout, :poll)

  defp wait(fun, deadline, :poll) do
    cond do
      fun.() -> true
      System.monotonic_time(:millisecond) > deadline -> false
      true -> Process.sleep(1) && wait(fun, deadline, :poll)
    end
  end

  def plain_python(args) do
    {out, 0} =
      System.cmd(python(), [Path.join(__DIR__, "plain_python.py") | args],
        env: [{"LITELLM_LOCAL_MODEL_COST_MAP", "True"}]
      )

    out |> String.split("\n", trim: true) |> List.last() |> JSON.decode!()
  end

  # -- workloads ----------------------------------------------------------------------------

  def dummy, do: {:dummy, %{"" => %{"answer" => "x"}}}
  def dummy_json, do: %{"kind" => "dummy", "answers" => %{"" => %{"answer" => "x"}}}

  def round_trip(port, q) do
    n = if q, do: 5_000, else: 20_000
    rounds = if q, do: 3, else: 5
    ours = latency(fn -> {:ok, nil} = DSPex.Native.ping(nil) end, n, rounds)
    theirs = latency(fn -> {:ok, _} = PortBridge.call(port, "ping", %{}) end, div(n, 4), rounds)
    secs = if q, do: 2, else: 4

    ours_64 =
      median(
        for _ <- 1..rounds,
            do: throughput(64, secs, fn _ -> {:ok, nil} = DSPex.Native.ping(nil) end)
      )

    theirs_64 =
      median(
        for _ <- 1..rounds,
            do: throughput(64, secs, fn _ -> {:ok, _} = PortBridge.call(port, "ping", %{}) end)
      )

    [
      row("1. round trip", "p50 latency, 1 process", ours.p50, "µs",
        port: theirs.p50,
        target: "≤ 10 µs; ≥ 6× faster than port"
      ),
      row("1. round trip", "p99 latency, 1 process", ours.p99, "µs",
        port: theirs.p99,
        target: "≤ 50 µs"
      ),
      row("1. round trip", "calls/s from 64 processes", ours_64, "/s",
        port: theirs_64,
        target: "≥ 2× port"
      )
    ]
  end

  def predict(port, q) do
    n = if q, do: 500, else: 2_000
    rounds = if q, do: 3, else: 5
    s = Session.open!(lm: dummy())
    :ok = Session.create_program(s, "p", signature: "question -> answer")

    {:ok, _} =
      PortBridge.call(port, "create_program", %{
        "id" => "p",
        "signature" => "question -> answer",
        "lm" => dummy_json()
      })

    # Interleave the three so machine noise hits them alike.
    results =
      for _ <- 1..rounds do
        plain = plain_python(["predict", "--n", "#{n}"])["p50_us"]

        ours =
          median(
            latencies(
              fn -> {:ok, _} = Session.execute(s, "p", %{question: "What is 2+2?"}) end,
              n,
              200
            )
          )

        theirs =
          median(
            latencies(
              fn ->
                {:ok, _} =
                  PortBridge.call(port, "execute", %{
                    "id" => "p",
                    "inputs" => %{"question" => "What is 2+2?"}
                  })
              end,
              n,
              200
            )
          )

        {plain, ours, theirs}
      end

    plain = median(for {p, _, _} <- results, do: p)
    ours = median(for {_, o, _} <- results, do: o)
    theirs = median(for {_, _, t} <- results, do: t)

    [
      row("2. one Predict (DummyLM)", "p50 latency", ours, "µs",
        plain: plain,
        port: theirs,
        target: "within 5% of plain Python"
      )
    ]
  end

  # The 20 ms OpenAI-compatible server on 127.0.0.1, and an LM spec that reaches it through
  # dspy.LM/litellm (no cache, no retries: every call hits the server).
  def loopback_lm do
    {:ok, server} =
      OpenAIServer.start(
        delay_ms: 20,
        record: false,
        reply: fn _ -> OpenAIServer.dspy_reply(%{"answer" => "4"}) end
      )

    {server,
     {"openai/gpt-4o-mini", api_base: server.url, api_key: "test", cache: false, num_retries: 0}}
  end

  def lm_bound(port, q) do
    {server, lm} = loopback_lm()

    cpu =
      plain_python(["lm_cpu", "--url", server.url, "--n", if(q, do: "100", else: "300")])[
        "cpu_ms_per_call"
      ]

    cpu_ceiling = 1_000 / cpu
    secs = if q, do: 3, else: 6
    callers = if q, do: [1, 8, 64], else: [1, 8, 64, 256]

    rows =
      for c <- callers do
        sessions =
          for _ <- 1..c do
            s = Session.open!(lm: lm)
            :ok = Session.create_program(s, "p", signature: "question -> answer")
            s
          end

        sessions = List.to_tuple(sessions)

        call = fn i ->
          {:ok, _} =
            Session.execute(elem(sessions, i - 1), "p", %{question: "What is 2+2?"},
              timeout: 60_000
            )
        end

        throughput(c, 1, call)
        ours = median(for _ <- 1..if(q, do: 1, else: 3), do: throughput(c, secs, call))
        ceiling = min(c / 0.020, cpu_ceiling)

        plain =
          if c in [8, 64],
            do:
              plain_python([
                "lm_threads",
                "--url",
                server.url,
                "--threads",
                "#{c}",
                "--seconds",
                "#{secs}"
              ])["calls_per_s"]

        row("3. LM-bound (20 ms server)", "calls/s, #{c} callers", ours, "/s",
          plain: plain,
          port: if(c == 8, do: port_lm(port, server.url, secs)),
          ceiling: ceiling,
          target: if(c >= 64, do: "≥ 85% of ceiling; 256 no worse than 64")
        )
      end

    OpenAIServer.stop(server)
    [row("3. LM-bound (20 ms server)", "Python CPU per LM call (plain Python)", cpu, "ms") | rows]
  end

  defp port_lm(port, url, secs) do
    lm = %{
      "kind" => "lm",
      "model" => "openai/gpt-4o-mini",
      "kwargs" => %{"api_base" => url, "api_key" => "test", "cache" => false, "num_retries" => 0}
    }

    {:ok, _} = PortBridge.call(port, "reset", %{})

    {:ok, _} =
      PortBridge.call(port, "create_program", %{
        "id" => "lm",
        "signature" => "question -> answer",
        "lm" => lm
      })

    call = fn _ ->
      {:ok, _} =
        PortBridge.call(port, "execute", %{
          "id" => "lm",
          "inputs" => %{"question" => "What is 2+2?"}
        })
    end

    throughput(8, 1, call)
    throughput(8, secs, call)
  end

  # 64 streams at once against a server that streams each answer word by word, 5 ms apart:
  # the median time to the first chunk, and chunks per second over all of them.
  def streaming(q) do
    text = "The capital of France is Paris, a city on the Seine with many old bridges."

    {:ok, server} =
      OpenAIServer.start(
        chunk_delay_ms: 5,
        record: false,
        reply: fn _ -> OpenAIServer.dspy_reply(%{"answer" => text}) end
      )

    lm =
      {"openai/gpt-4o-mini", api_base: server.url, api_key: "test", cache: false, num_retries: 0}

    n = 64

    round = fn ->
      t0 = System.monotonic_time(:microsecond)

      results =
        1..n
        |> Task.async_stream(
          fn _ ->
            s = Session.open!(lm: lm)
            :ok = Session.create_program(s, "p", signature: "question -> answer")
            start = System.monotonic_time(:microsecond)

            items =
              Enum.map(Session.stream(s, "p", %{question: "What is 2+2?"}, timeout: 120_000), fn
                item -> {System.monotonic_time(:microsecond), item}
              end)

            chunks = for {t, {:chunk, _, _}} <- items, do: t
            {(hd(chunks) - start) / 1_000, length(chunks)}
          end,
          max_concurrency: n,
          timeout: 180_000
        )
        |> Enum.map(fn {:ok, r} -> r end)

      elapsed = (System.monotonic_time(:microsecond) - t0) / 1_000_000

      {median(Enum.map(results, &elem(&1, 0))),
       Enum.sum(Enum.map(results, &elem(&1, 1))) / elapsed}
    end

    round.()
    measured = for _ <- 1..if(q, do: 1, else: 3), do: round.()
    plain = plain_python(["streams", "--url", server.url, "--streams", "#{n}"])
    OpenAIServer.stop(server)

    [
      row(
        "8. streaming (64 streams, 5 ms/chunk)",
        "time to first chunk, p50",
        median(Enum.map(measured, &elem(&1, 0))),
        "ms",
        plain: plain["first_chunk_ms_p50"]
      ),
      row(
        "8. streaming (64 streams, 5 ms/chunk)",
        "chunks/s",
        median(Enum.map(measured, &elem(&1, 1))),
        "/s",
        plain: plain["chunks_per_s"]
      )
    ]
  end

  def lifecycle(q) do
    secs = if q, do: 2, else: 5
    count = if q, do: 2_000, else: 10_000

    cycle = fn _ ->
      s = Session.open!(lm: dummy())
      :ok = Session.create_program(s, "p", signature: "question -> answer")
      {:ok, _} = Session.execute(s, "p", %{question: "q"})
    end

    throughput(8, 1, cycle)
    per_s = median(for _ <- 1..3, do: throughput(8, secs, cycle))

    # 4b and 5 in a fresh BEAM: in this one, memory freed by earlier workloads would be
    # reused and hide the sessions' real cost.
    script = ~S"""
    rss = fn ->
      [_, kb] = Regex.run(~r/VmRSS:\s+(\d+) kB/, File.read!("/proc/self/status"))
      String.to_integer(kb) / 1024
    end
    quiet = fn ->
      for pid <- Process.list(), do: :erlang.garbage_collect(pid)
      Stream.repeatedly(fn -> Process.sleep(5); DSPex.Native.stats() end)
      |> Enum.find(&(&1.releases_queued == 0 and &1.queued == 0 and &1.workers_idle == &1.workers_alive))
    end
    {:ok, _} = Application.ensure_all_started(:dspex_native)
    :ok = DSPex.Native.await_ready()
    count = String.to_integer(System.get_env("COUNT"))
    Process.sleep(4_000)
    quiet.()
    before = rss.()
    parent = self()
    wave = fn ->
      holder = spawn(fn ->
        sessions = for _ <- 1..count do
          s = DSPex.Native.Session.open!(lm: {:dummy, %{"" => %{"answer" => "x"}}})
          for id <- ~w(a b c), do: :ok = DSPex.Native.Session.create_program(s, id, signature: "question -> answer")
          s
        end
        send(parent, :held)
        receive do: (:drop -> length(sessions))
      end)
      receive do: (:held -> :ok)
      quiet.()
      held = rss.()
      base = DSPex.Native.stats().programs
      t0 = System.monotonic_time(:microsecond)
      send(holder, :drop)
      Stream.repeatedly(fn -> DSPex.Native.stats().programs end) |> Enum.find(&(&1 <= base - 3 * count))
      reclaim_ms = (System.monotonic_time(:microsecond) - t0) / 1000
      quiet.()
      Process.sleep(1_000)
      {held, rss.(), reclaim_ms}
    end
    {held, after_drop, reclaim_ms} = wave.()
    # A second wave shows whether what stayed is reused (allocator) or lost (a leak).
    {held2, _, _} = wave.()
    IO.puts("MEMORY #{before} #{held} #{after_drop} #{reclaim_ms} #{held2}")
    """

    ebin = Path.join(Mix.Project.build_path(), "lib/dspex_native/ebin")

    {out, 0} =
      System.cmd("elixir", ["-pa", ebin, "-e", script],
        env: [{"COUNT", "#{count}"}, {"DSPEX_PYTHON", Path.dirname(Path.dirname(python()))}]
      )

    [_ | figures] = Regex.run(~r/MEMORY (\S+) (\S+) (\S+) (\S+) (\S+)/, out)
    [before, held, after_drop, reclaim_ms, held2] = Enum.map(figures, &elem(Float.parse(&1), 0))

    per_session_kb = (held - before) * 1024 / count

    [
      row("4. session lifecycle", "open + create + execute + drop, 8 processes", per_s, "/s",
        target: "≥ 5,000/s"
      ),
      row(
        "4. session lifecycle",
        "memory per idle session with 3 programs (RSS growth / #{count}, fresh BEAM)",
        per_session_kb,
        "KB",
        target: "≤ 64 KB"
      ),
      row("5. reclaim", "#{count} sessions dropped: time until freed in Python", reclaim_ms, "ms",
        target: "≤ 1,000 ms"
      ),
      row("5. reclaim", "RSS left over after the drop (vs before)", after_drop - before, "MB",
        note:
          "#{Float.round(before, 1)} → #{Float.round(held, 1)} → #{Float.round(after_drop, 1)} MB; " <>
            "a second wave of #{count} holds #{Float.round(held2, 1)} MB (freed memory is reused)",
        target: "within 10% of before (#{Float.round(before * 0.1, 1)} MB)"
      ),
      row("5. reclaim", "RSS growth of a second wave over the first", held2 - held, "MB",
        target: "≈ 0 (no leak)"
      )
    ]
  end

  def startup(q) do
    rounds = if q, do: 2, else: 5
    ebin = Path.join(Mix.Project.build_path(), "lib/dspex_native/ebin")

    script = ~S"""
    t0 = System.monotonic_time(:microsecond)
    {:ok, _} = Application.ensure_all_started(:dspex_native)
    s = DSPex.Native.Session.open!(lm: {:dummy, %{"" => %{"answer" => "x"}}})
    :ok = DSPex.Native.Session.create_program(s, "p", signature: "question -> answer")
    {:ok, _} = DSPex.Native.Session.execute(s, "p", %{question: "q"})
    IO.puts("FIRST_EXECUTE_MS #{(System.monotonic_time(:microsecond) - t0) / 1000}")
    """

    runs =
      for _ <- 1..rounds do
        {out, 0} =
          System.cmd("elixir", ["-pa", ebin, "-e", script],
            env: [{"DSPEX_PYTHON", Path.dirname(Path.dirname(python()))}]
          )

        [_, ms] = Regex.run(~r/FIRST_EXECUTE_MS (\S+)/, out)
        {ms, ""} = Float.parse(ms)
        import_ms = plain_python(["import_time"])["import_dspy_s"] * 1_000
        {ms, import_ms}
      end

    ours = median(for {o, _} <- runs, do: o)
    import_ms = median(for {_, i} <- runs, do: i)

    port_ms =
      median(
        for _ <- 1..rounds do
          {:ok, b} = PortBridge.start_link(python: python())
          ms = PortBridge.info(b).startup_us / 1_000
          PortBridge.stop(b)
          ms
        end
      )

    [
      row("6. start-up", "application start → first execute done", ours, "ms",
        plain: import_ms,
        port: port_ms,
        target: "≤ import dspy + 100 ms",
        note: "plain = `import dspy` alone in a fresh Python; port = Port.open → first ping"
      )
    ]
  end

  # 7. Beyond one node: peers on this machine (started with :peer), the same 20 ms server.
  def cluster(q) do
    {_, 0} = System.cmd("epmd", ["-daemon"])
    unless Node.alive?(), do: {:ok, _} = Node.start(:"dspex_bench@127.0.0.1", :longnames)
    {:ok, p1} = DSPex.Native.Peer.start()
    {:ok, p2} = DSPex.Native.Peer.start()
    rounds = if q, do: 3, else: 5
    n = if q, do: 2_000, else: 5_000

    local = Session.open!()
    remote = Session.open!(node: p1)
    here = latency(fn -> {:ok, []} = Session.list_programs(local) end, n, rounds)
    there = latency(fn -> {:ok, []} = Session.list_programs(remote) end, n, rounds)

    {server, lm} = loopback_lm()

    secs = if q, do: 3, else: 6
    callers = 256

    rows =
      for nodes <- [[node()], [node(), p1], [node(), p1, p2]] do
        sessions =
          for i <- 1..callers do
            s = Session.open!(node: Enum.at(nodes, rem(i, length(nodes))), lm: lm)
            :ok = Session.create_program(s, "p", signature: "question -> answer")
            s
          end
          |> List.to_tuple()

        call = fn i ->
          {:ok, _} =
            Session.execute(elem(sessions, i - 1), "p", %{question: "What is 2+2?"},
              timeout: 60_000
            )
        end

        throughput(callers, 1, call)
        per_s = median(for _ <- 1..if(q, do: 1, else: 3), do: throughput(callers, secs, call))

        row(
          "7. cluster (this machine)",
          "LM-bound calls/s, 256 callers over #{length(nodes)} node(s)",
          per_s,
          "/s"
        )
      end

    OpenAIServer.stop(server)
    for p <- [p1, p2], do: DSPex.Native.Peer.stop(p)

    [
      row(
        "7. cluster (this machine)",
        "session call p50 on a remote node (vs local)",
        there.p50,
        "µs",
        note:
          "local #{fmt(here.p50)} µs (p99 #{fmt(here.p99)}), remote #{fmt(there.p50)} µs " <>
            "(p99 #{fmt(there.p99)}): +#{fmt(there.p50 - here.p50)} µs for :erpc over loopback distribution"
      )
      | rows
    ]
  end

  # -- reporting ----------------------------------------------------------------------------

  def row(workload, metric, value, unit, opts \\ []) do
    %{
      workload: workload,
      metric: metric,
      value: value,
      unit: unit,
      plain: opts[:plain],
      port: opts[:port],
      ceiling: opts[:ceiling],
      target: opts[:target],
      note: opts[:note]
    }
  end

  def fmt(nil), do: ""
  def fmt(x) when is_float(x) and x >= 100, do: :erlang.float_to_binary(x, decimals: 0)
  def fmt(x) when is_float(x), do: :erlang.float_to_binary(x, decimals: 2)
  def fmt(x), do: to_string(x)

  def ratio(_, nil), do: ""
  def ratio(a, b) when b != 0, do: "#{:erlang.float_to_binary(a / b, decimals: 2)}×"

  def print(rows) do
    header = [
      "workload",
      "metric",
      "dspex_native",
      "plain Python",
      "port bridge",
      "vs plain",
      "vs port",
      "ceiling",
      "target"
    ]

    lines =
      for r <- rows do
        [
          r.workload,
          r.metric,
          "#{fmt(r.value)} #{r.unit}",
          fmt(r.plain),
          fmt(r.port),
          ratio(r.value, r.plain),
          ratio(r.value, r.port),
          if(r.ceiling, do: "#{fmt(r.ceiling)} (#{round(100 * r.value / r.ceiling)}%)", else: ""),
          r.target || ""
        ]
      end

    IO.puts("\n| " <> Enum.join(header, " | ") <> " |")
    IO.puts("|" <> String.duplicate(" --- |", length(header)))
    for l <- lines, do: IO.puts("| " <> Enum.join(l, " | ") <> " |")
    for r <- rows, r.note, do: IO.puts("\n#{r.workload} — #{r.metric}: #{r.note}")
  end

  def machine do
    {cpu, _} = System.cmd("sh", ["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"])

    %{
      cores: System.schedulers_online(),
      cpu: String.trim(cpu),
      otp: System.otp_release(),
      elixir: System.version()
    }
  end

  def run(argv) do
    q = "--quick" in argv
    :ok = DSPex.Native.await_ready(120_000)
    # Let the background import of litellm finish: it holds the GIL in bursts.
    Process.sleep(if q, do: 3_000, else: 8_000)
    {:ok, port} = PortBridge.start_link(python: python())

    IO.puts(
      "dspex_native benchmark#{if q, do: " (quick)"}: #{inspect(machine())}, workers #{DSPex.Native.stats().workers}"
    )

    rows =
      Enum.flat_map(
        [
          &round_trip(port, &1),
          &predict(port, &1),
          &lm_bound(port, &1),
          fn q -> lifecycle(q) end,
          fn q -> startup(q) end,
          fn q -> streaming(q) end,
          fn q -> cluster(q) end
        ],
        fn workload ->
          rows = workload.(q)

          Enum.each(
            rows,
            &IO.puts("  #{&1.workload} / #{&1.metric}: #{fmt(&1.value)} #{&1.unit}")
          )

          rows
        end
      )

    print(rows)

    out = %{
      "machine" => machine(),
      "quick" => q,
      "rows" => Enum.map(rows, &Map.new(&1, fn {k, v} -> {to_string(k), v} end))
    }

    File.write!(Path.join(__DIR__, "results.json"), JSON.encode!(out))
    IO.puts("\nwrote bench/results.json")
  end
end

Bench.run(System.argv())
