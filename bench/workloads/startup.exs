defmodule Bench.Startup do
  @moduledoc """
  6. Start-up: application start → first execute done, in a fresh BEAM; against a cold
  `import dspy` in a fresh Python, and the port bridge's Port.open → first ping (dspy
  imported before it answers).
  """

  import Bench.Measure
  alias Bench.{Plain, Report}
  alias DSPex.Bench.PortBridge

  @script ~S"""
  t0 = System.monotonic_time(:microsecond)
  {:ok, _} = Application.ensure_all_started(:dspex_native)
  s = DSPex.Native.Session.open!(lm: {:dummy, %{"" => %{"answer" => "x"}}})
  :ok = DSPex.Native.Session.create_program(s, "p", signature: "question -> answer")
  {:ok, _} = DSPex.Native.Session.execute(s, "p", %{question: "q"})
  IO.puts("FIRST_EXECUTE_MS #{(System.monotonic_time(:microsecond) - t0) / 1000}")
  """

  def run(%{rounds: rounds}) do
    ebin = Path.join(Mix.Project.build_path(), "lib/dspex_native/ebin")
    env = [{"DSPEX_PYTHON", DSPex.Native.Environment.venv()}]

    ours = fn ->
      {out, 0} = System.cmd("elixir", ["-pa", ebin, "-e", @script], env: env)
      [_, ms] = Regex.run(~r/FIRST_EXECUTE_MS (\S+)/, out)
      String.to_float(ms)
    end

    port = fn ->
      {:ok, b} = PortBridge.start_link(python: Plain.python())
      ms = PortBridge.info(b).startup_us / 1_000
      PortBridge.stop(b)
      ms
    end

    # Every contender imported dspy once already: the files are in the page cache.
    results =
      rounds(rounds, [ours: ours, plain: &Plain.import_ms/0, port: port],
        warmup: false,
        redo: false
      )

    # Each turn starts processes of its own, which would count as others' CPU.
    results = Map.drop(results, [:others, :redone])

    [
      Report.row("6. start-up", "application start → first execute done", "ms", results,
        target: {:diff, :plain, :<=, 100},
        target_text: "≤ import dspy + 100 ms",
        note: "plain = `import dspy` alone in a fresh Python; port = Port.open → first ping"
      )
    ]
  end
end
