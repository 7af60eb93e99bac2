defmodule DSPex.Native.RuntimeEventsTest do
  # What the runtime reports outside any call (DSPex.Native.Events): Python ready, the LM
  # client stack warm, the pool growing and shrinking, as :telemetry events and Logger
  # lines. Each in a BEAM of its own: this one's runtime started long ago, with its own pool.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers

  @moduletag timeout: 240_000

  # Attaches a handler that sends each event to the script's process, and a `next` that
  # waits for one (the child BEAM has test/support's :telemetry stand-in).
  @forward ~S"""
  defmodule Forward do
    def handle(event, measurements, metadata, pid), do: send(pid, {event, measurements, metadata})
  end

  next = fn event, timeout ->
    receive do
      {^event, measurements, metadata} -> {measurements, metadata}
    after
      timeout -> raise "no #{inspect(event)} within #{timeout} ms"
    end
  end

  ms = fn native -> System.convert_time_unit(native, :native, :microsecond) / 1000 end
  """

  test "Python ready and the LM client stack warm: events with timings and versions, info lines" do
    output =
      run_beam(
        @forward <>
          ~S"""
          events = [[:dspex_native, :runtime, :ready], [:dspex_native, :runtime, :warm]]
          :ok = :telemetry.attach_many("runtime", events, &Forward.handle/4, self())
          started = System.monotonic_time()
          {:ok, _} = Application.ensure_all_started(:dspex_native)

          {ready, about} = next.([:dspex_native, :runtime, :ready], 60_000)
          waited = ms.(System.monotonic_time() - started)
          IO.puts("READY #{inspect({Map.new(ready, fn {k, v} -> {k, ms.(v)} end), about, waited})}")
          {warm, warm_about} = next.([:dspex_native, :runtime, :warm], 120_000)
          IO.puts("WARM #{inspect({ms.(warm.duration), warm_about})}")
          # The lines are logged by the process that emitted the events: wait for it.
          :sys.get_state(DSPex.Native.Events)
          Logger.flush()
          """,
        [{"DSPEX_TRACE", ""}],
        180_000
      )

    {ready, about, waited} = eval(beam_line(output, "READY"))
    %{duration: total, init_time: init, import_time: import} = ready
    assert init > 0 and import > 0 and init + import <= total
    # Measured from the application's start, which came after the script's clock started.
    assert total <= waited
    {version, 0} = System.cmd(venv_python(), ["-c", "import sys; print(sys.version.split()[0])"])
    assert about.python_version == String.trim(version)
    assert about.dspy_version =~ ~r/^\d+\.\d+/
    assert File.exists?(Path.join(about.venv, "pyvenv.cfg"))
    assert about.node == :nonode@nohost

    {warm, %{error: nil}} = eval(beam_line(output, "WARM"))
    assert warm > 0

    assert output =~
             ~r/\[info\] dspex_native: Python #{Regex.escape(about.python_version)} ready in [\d.]+ m?s \(DSPy #{Regex.escape(about.dspy_version)}, venv #{Regex.escape(about.venv)}; interpreter/

    assert output =~ ~r/\[info\] dspex_native: LM client stack \(litellm\) imported in [\d.]+ m?s/
  end

  test "a burst of calls waiting on busy workers grows the pool; idle extras retire" do
    flag = Path.join(System.tmp_dir!(), "dspex-pool-#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm(flag) end)

    output =
      run_beam(
        start_source("[workers: 2, max_workers: 6, warm: false]") <>
          @forward <>
          ~s"""
          flag = #{inspect(flag)}
          """ <>
          ~S"""
          events = [[:dspex_native, :pool, :grow], [:dspex_native, :pool, :shrink]]
          :ok = :telemetry.attach_many("pool", events, &Forward.handle/4, self())
          # Six jobs that hold their workers (off the GIL) until the flag exists: four wait.
          held = for n <- 1..6, do: Task.async(fn -> test_eval(held_source("pool#{n}", flag), 120_000) end)

          grown =
            Stream.repeatedly(fn -> next.([:dspex_native, :pool, :grow], 30_000) end)
            |> Enum.reduce_while([], fn {m, meta}, acc ->
              acc = [{m, meta} | acc]
              if m.workers_alive == 6, do: {:halt, acc}, else: {:cont, acc}
            end)

          IO.puts("GREW #{inspect(Enum.reverse(grown))}")
          File.write!(flag, "")
          Enum.each(held, &({:ok, _} = Task.await(&1, 60_000)))

          # Extra workers retire after 10 s without work, one event each.
          shrunk = for _ <- 1..4, do: next.([:dspex_native, :pool, :shrink], 40_000)
          IO.puts("SHRANK #{inspect(shrunk)}")
          :sys.get_state(DSPex.Native.Events)
          Logger.flush()
          """,
        [{"DSPEX_TRACE", ""}],
        180_000
      )

    grown = eval(beam_line(output, "GREW"))
    assert Enum.all?(grown, fn {m, meta} -> m.added > 0 and meta == %{node: :nonode@nohost} end)
    assert grown |> Enum.map(fn {m, _} -> m.added end) |> Enum.sum() == 4
    assert List.last(grown) |> elem(0) |> Map.fetch!(:workers_alive) == 6

    shrunk = eval(beam_line(output, "SHRANK"))
    # Extras that went idle together retire together: in any order.
    left = shrunk |> Enum.map(fn {m, _} -> {m.workers_alive, m.retired} end) |> Enum.sort()
    assert left == [{2, 1}, {3, 1}, {4, 1}, {5, 1}]

    assert output =~ ~r/\[debug\] dspex_native: the pool grew by \d to \d workers/
    assert output =~ "[debug] dspex_native: an idle worker retired, 2 left"
  end

  defp eval(text), do: text |> Code.eval_string() |> elem(0)

  defp venv_python, do: Path.expand("../.venv/bin/python", __DIR__)
end
