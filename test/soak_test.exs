defmodule DSPex.Native.SoakTest do
  # `make soak`: 200,000 executions across 100 sessions. Prints the BEAM's RSS at the start,
  # middle and end, and the live counts after closing. Excluded from `make test`.
  use ExUnit.Case, async: false

  import DSPex.Native.TestHelpers
  alias DSPex.Native.Session

  @moduletag :soak
  @moduletag timeout: :infinity

  @executions 200_000
  @sessions 100
  @callers 16

  defp rss_mb do
    [_, kb] = Regex.run(~r/VmRSS:\s+(\d+) kB/, File.read!("/proc/self/status"))
    Float.round(String.to_integer(kb) / 1024, 1)
  end

  defp run(sessions, count) do
    per_caller = div(count, @callers)

    1..@callers
    |> Task.async_stream(
      fn c ->
        for i <- 1..per_caller do
          s = Enum.at(sessions, rem(c * per_caller + i, @sessions))
          {:ok, %{"answer" => "soak"}} = Session.execute(s, "p", %{question: "q#{i}"})
        end
      end,
      timeout: :infinity
    )
    |> Stream.run()
  end

  test "200,000 executions across 100 sessions: flat memory, nothing left after close" do
    sessions =
      for n <- 1..@sessions do
        s = Session.open!(name: "soak#{n}", lm: dummy(%{"answer" => "soak"}))
        :ok = Session.create_program(s, "p", signature: "question -> answer")
        s
      end

    IO.puts("\nsoak: RSS at start: #{rss_mb()} MB")
    # Warm-up: the first executions fill caches that are meant to stay.
    run(sessions, div(@executions, 10))
    warm = rss_mb()
    IO.puts("soak: RSS after warm-up (#{div(@executions, 10)} executions): #{warm} MB")
    run(sessions, div(@executions * 4, 10))
    middle = rss_mb()
    IO.puts("soak: RSS in the middle (#{div(@executions, 2)}): #{middle} MB")
    run(sessions, div(@executions, 2))
    finish = rss_mb()
    IO.puts("soak: RSS at the end (#{@executions}): #{finish} MB")

    for s <- sessions, do: :ok = Session.close(s)
    assert eventually(fn -> DSPex.Native.stats(gc: true).programs == 0 end, 5_000)
    stats = DSPex.Native.stats(gc: true)
    IO.puts("soak: live after close: sessions #{stats.sessions}, programs #{stats.programs}")
    assert stats.sessions == 0 and stats.programs == 0
    # A leak check, not a speed figure: after warm-up the RSS stays within 10%.
    assert finish <= warm * 1.10, "RSS grew from #{warm} MB to #{finish} MB"
  end
end
