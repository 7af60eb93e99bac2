# The benchmark: `make bench [ARGS="--quick --only NAME,... --rounds N --out PATH"]`, or
# `MIX_ENV=prod mix run bench/run.exs [...]`.
#
# Each row runs dspex_native and, where they have a counterpart, two baselines in the same
# interleaved rounds: plain Python (the same DSPy work in a long-lived Python process with
# no bridge: the floor) and the port bridge (one Python process behind a port with a global
# program dict: the design this library replaces). `Bench.Stats` says how rounds become a
# median, min–max and a verdict. Prints a Markdown table and writes tmp/bench-results.json.
# `--quick` runs 7 rounds instead of 9, each shorter.

support = ~w(stats machine host measure plain report)
workloads = ~w(per_call lm_bound sessions startup beyond)

for file <-
      ["../test/support/openai_server.ex", "port_bridge.ex"] ++
        Enum.map(support, &"support/#{&1}.exs") ++ Enum.map(workloads, &"workloads/#{&1}.exs"),
    do: Code.require_file(file, __DIR__)

defmodule Bench do
  alias Bench.{Beyond, Host, LMBound, Machine, PerCall, Plain, Report, Sessions, Startup}
  alias DSPex.Bench.PortBridge

  @results Path.expand("../tmp/bench-results.json", __DIR__)

  @workloads [
    round_trip: &PerCall.round_trip/1,
    predict: &PerCall.predict/1,
    lm_bound: &LMBound.run/1,
    lifecycle: &Sessions.lifecycle/1,
    memory: &Sessions.memory/1,
    startup: &Startup.run/1,
    streaming: &Beyond.streaming/1,
    cluster: &Beyond.cluster/1
  ]

  def run(argv) do
    {opts, _} =
      OptionParser.parse!(argv,
        strict: [quick: :boolean, only: :string, rounds: :integer, out: :string]
      )

    q = Keyword.get(opts, :quick, false)

    only =
      if opts[:only],
        do: Enum.map(String.split(opts[:only], ","), &String.to_atom/1),
        else: Keyword.keys(@workloads)

    t0 = System.monotonic_time(:millisecond)
    # The pool's debug lines (workers added and retired) would bury the table.
    Logger.configure(level: :info)

    # The baselines import dspy while the runtime starts.
    plain = Plain.start()
    {:ok, port} = PortBridge.start_link(python: Plain.python())
    :ok = DSPex.Native.await_ready(120_000)

    ctx = %{
      quick: q,
      rounds: opts[:rounds] || if(q, do: 7, else: 9),
      port: port,
      plain: Plain.await(plain)
    }

    {:os_pid, plain_pid} = Port.info(plain, :os_pid)
    Enum.each([plain_pid, PortBridge.info(port).os_pid], &Machine.own/1)

    # The runtime imports litellm in the background, holding the GIL in bursts: let it end.
    Machine.quiet()
    load = [start: Machine.load_average()]

    host =
      case Host.start() do
        {:ok, ns} -> "cross-core round trip #{Report.num(ns)} ns"
        {:episode, ns} -> "cross-core round trip #{Report.num(ns)} ns: the host stayed slow"
        {:error, why} -> "no cross-core probe (#{inspect(why)}): host episodes go unnoticed"
      end

    IO.puts(
      "dspex_native benchmark#{if q, do: " (quick)"}: #{inspect(Machine.info())}, load #{load[:start]}, #{host}"
    )

    rows =
      for {name, workload} <- @workloads, name in only, row <- timed(name, workload, ctx) do
        IO.puts(Report.line(row))
        row
      end

    seconds = (System.monotonic_time(:millisecond) - t0) / 1000
    load = load ++ [end: Machine.load_average()]
    Report.print(rows)

    IO.puts(
      "\n#{round(seconds)} s; 1-minute load average at start #{load[:start]}, at end #{load[:end]}"
    )

    meta = %{
      machine: Machine.info(),
      quick: q,
      rounds: ctx.rounds,
      seconds: seconds,
      load: Map.new(load)
    }

    out = opts[:out] || @results
    Report.write(rows, meta, out)
    IO.puts("wrote #{Path.relative_to_cwd(out)}")
    Plain.stop(ctx.plain)
    PortBridge.stop(port)
  end

  defp timed(name, workload, ctx) do
    Machine.quiet()
    t0 = System.monotonic_time(:millisecond)
    rows = workload.(ctx)
    IO.puts("#{name}: #{(System.monotonic_time(:millisecond) - t0) / 1000} s")
    rows
  end
end

Bench.run(System.argv())
