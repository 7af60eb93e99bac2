defmodule DSPex.Native.TimeoutRaceTest do
  # A deadline that races the job's output and its answer: every call returns a clean
  # outcome, none crashes, and nothing of its job reaches the caller afterwards.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO
  alias DSPex.Native.{Error, Session}

  @moduletag timeout: 180_000

  @module """
  import sys, time
  import dspy

  class SleepThenPrint(dspy.Module):
      def forward(self, ms):
          time.sleep(ms / 1000)
          print("woke after", ms, "ms")
          sys.stderr.write("and said so\\n")
          return dspy.Prediction(slept=ms)
  """

  test "1,000 calls whose timeout is the time the job sleeps before it prints: no crash, no stray message" do
    s = Session.open!()
    {:ok, _} = Session.load_module(s, "race", @module)
    :ok = Session.create_program(s, "p", module: {:custom, "SleepThenPrint"})

    # Their output (what made it before the deadline) is captured, not printed.
    {{outcomes, _out}, _err} = with_io(:stderr, fn -> with_io(fn -> race(s) end) end)

    assert length(outcomes) == 1_000

    for {ms, result, stray} <- outcomes do
      case result do
        {:ok, %{"slept" => ^ms}} -> :ok
        {:error, %Error{reason: :timeout}} -> :ok
        other -> flunk("#{ms} ms: #{inspect(other)}")
      end

      assert stray == :none, "#{ms} ms: a stray message #{inspect(stray)}"
    end
  end

  # 20 callers make 50 calls each, one after another, then wait 2 s for anything else to
  # arrive: a late message of any of their calls would be there by then.
  defp race(s) do
    1..20
    |> Task.async_stream(
      fn caller ->
        results =
          for n <- 1..50 do
            ms = rem(caller * 50 + n, 20) + 1
            {ms, Session.execute(s, "p", %{ms: ms}, timeout: ms)}
          end

        stray =
          receive do
            message -> message
          after
            2_000 -> :none
          end

        for {ms, result} <- results, do: {ms, result, stray}
      end,
      max_concurrency: 20,
      timeout: 120_000
    )
    |> Enum.flat_map(fn {:ok, outcomes} -> outcomes end)
  end
end
