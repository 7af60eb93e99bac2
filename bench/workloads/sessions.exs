defmodule Bench.Sessions do
  @moduledoc """
  4. Session lifecycle from 8 processes: open + create + close with no execute, and with
  one Predict (DummyLM), whose reference is 1 / (plain Python's Predict p50) measured in
  the same rounds; memory per idle session. 5. Reclaiming dropped sessions. The memory
  figures come from a fresh BEAM, one run each.
  """

  import Bench.Measure
  alias Bench.{PerCall, Plain, Report}
  alias DSPex.Native.Session

  def lifecycle(%{plain: plain, quick: q, rounds: rounds}) do
    secs = if q, do: 0.5, else: 1.5

    no_execute = fn _ -> Session.close(open_dummy()) end

    one_execute = fn _ ->
      s = open_dummy()
      {:ok, _} = Session.execute(s, "p", %{question: "q"})
      Session.close(s)
    end

    # Execute alone on sessions opened beforehand: what the lifecycle adds to it.
    open = List.to_tuple(for _ <- 1..8, do: open_dummy())
    execute = fn i -> {:ok, _} = Session.execute(elem(open, i - 1), "p", %{question: "q"}) end
    bare = rounds(rounds, ours: fn -> throughput(8, secs, no_execute) end)

    with_execute =
      rounds(rounds,
        ours: fn -> throughput(8, secs, one_execute) end,
        execute: fn -> throughput(8, secs, execute) end,
        plain: fn ->
          1.0e6 /
            Plain.call(plain, %{"cmd" => "predict", "n" => if(q, do: 300, else: 1_000)})["p50_us"]
        end
      )

    for i <- 1..8, do: Session.close(elem(open, i - 1))
    w = "4. session lifecycle"

    [
      Report.row(w, "open + create + close, no execute, 8 processes", "/s", bare,
        target: {:abs, :>=, 5_000}
      ),
      Report.row(
        w,
        "open + create + execute + close, 8 processes",
        "/s",
        Map.delete(with_execute, :execute),
        target: {:ratio, :plain, :>=, 0.9},
        target_text: "≥ 90% of 1 / (plain Predict p50)",
        note: "plain column = 1 / (plain Python's Predict p50), the most one interpreter can do"
      ),
      Report.row(
        w,
        "execute alone on open sessions, 8 processes",
        "/s",
        Map.merge(Map.take(with_execute, meta()), %{
          ours: with_execute.execute,
          plain: with_execute.plain
        }),
        note: "the same rounds as the row above: the lifecycle's cost is the difference"
      )
    ]
  end

  defp open_dummy do
    s = Session.open!(lm: PerCall.dummy())
    :ok = Session.create_program(s, "p", signature: "question -> answer")
    s
  end

  # In a fresh BEAM: in this one, memory freed by earlier workloads would be reused and
  # hide the sessions' real cost.
  @script ~S"""
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
  # Until the background import of litellm is done: its memory is not the sessions'.
  cpu_ms = fn ->
    [_, rest] = String.split(File.read!("/proc/self/stat"), ") ", parts: 2)
    [u, s] = rest |> String.split() |> Enum.slice(11, 2)
    10 * (String.to_integer(u) + String.to_integer(s))
  end
  Stream.repeatedly(fn -> c0 = cpu_ms.(); Process.sleep(200); cpu_ms.() - c0 end)
  |> Stream.take(150)
  |> Enum.find(&(&1 <= 20))
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

  def memory(%{quick: q}) do
    count = if q, do: 2_000, else: 10_000
    ebin = Path.join(Mix.Project.build_path(), "lib/dspex_native/ebin")
    venv = DSPex.Native.Environment.venv()

    env = [
      {"COUNT", "#{count}"},
      {"SETTLE_MS", if(q, do: "2000", else: "4000")},
      {"DSPEX_PYTHON", venv}
    ]

    {out, 0} = System.cmd("elixir", ["-pa", ebin, "-e", @script], env: env)
    [_ | figures] = Regex.run(~r/MEMORY (\S+) (\S+) (\S+) (\S+) (\S+)/, out)
    [before, held, after_drop, reclaim_ms, held2] = Enum.map(figures, &elem(Float.parse(&1), 0))
    one = fn x -> %{ours: [x]} end
    mb = &Float.round(&1, 1)

    [
      Report.row(
        "4. session lifecycle",
        "memory per idle session with 3 programs (RSS growth / #{count}, fresh BEAM)",
        "KB",
        one.((held - before) * 1024 / count),
        target: {:abs, :<=, 64}
      ),
      Report.row(
        "5. reclaim",
        "#{count} sessions dropped: time until freed in Python",
        "ms",
        one.(reclaim_ms),
        target: {:abs, :<=, 1_000}
      ),
      Report.row(
        "5. reclaim",
        "RSS left over after the drop (vs before)",
        "MB",
        one.(after_drop - before),
        target: {:abs, :<=, before * 0.1},
        target_text: "within 10% of before (#{mb.(before * 0.1)} MB)",
        note:
          "#{mb.(before)} → #{mb.(held)} → #{mb.(after_drop)} MB; a second wave of #{count} " <>
            "holds #{mb.(held2)} MB (freed memory is reused)"
      ),
      Report.row(
        "5. reclaim",
        "RSS growth of a second wave over the first",
        "MB",
        one.(held2 - held),
        target_text: "≈ 0 (no leak)"
      )
    ]
  end
end
