defmodule DSPex.Native.CancellationTest do
  # Timeouts that cancel: a queued job is dropped, a running one interrupted, and no late
  # answer ever reaches the caller. The same when the caller dies.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers
  alias DSPex.Native.Error

  defp tag, do: "job-#{System.unique_integer([:positive])}"

  test "a timeout interrupts running Python and leaves no late answer" do
    tag =
      while_running(fn timeout ->
        tag = tag()
        assert {:error, %Error{reason: :timeout}} = test_eval(spin_source(tag, 60), timeout)
        if started?(tag), do: tag
      end)

    # The worker raised dspex_bridge.Cancelled in the job and went back to serving.
    assert eventually(fn -> spin_events(tag) == ["started", "Cancelled"] end, 30_000),
           inspect(spin_events(tag))

    # Its answer, dropped at the gate, would have come right after.
    refute_receive _, 500
  end

  test "a caller that dies while its job runs gets its job interrupted" do
    tag = tag()
    parent = self()

    pid =
      spawn(fn ->
        send(parent, :submitting)
        test_eval(spin_source(tag, 30), :infinity)
      end)

    assert_receive :submitting
    assert eventually(fn -> spin_events(tag) == ["started"] end, 30_000)
    Process.exit(pid, :kill)
    assert eventually(fn -> spin_events(tag) == ["started", "Cancelled"] end, 30_000)
  end

  test "an answer that arrives exactly at the timeout is returned, not lost" do
    # Tiny timeouts race the worker's answer; every outcome must be a clean one.
    for _ <- 1..200 do
      case DSPex.Native.ping(:x, 0) do
        {:ok, :x} -> :ok
        {:error, %Error{reason: :timeout}} -> :ok
      end
    end

    refute_receive _, 500
  end

  test "a Python exception that escapes a job does not stop the worker" do
    for exc <- ~w(SystemExit KeyboardInterrupt RecursionError MemoryError GeneratorExit) do
      assert {:error, %Error{reason: :python_error, python_type: ^exc}} =
               test_eval("raise #{exc}()")
    end

    assert {:error, %Error{reason: :python_error, python_type: "dspex_test_eval.Odd"}} =
             test_eval("class Odd(BaseException):\n    pass\nraise Odd()")

    assert {:error, %Error{reason: :python_error, message: message}} =
             test_eval("""
             class Mute(Exception):
                 def __str__(self):
                     raise RuntimeError("no")
             raise Mute()
             """)

    assert is_binary(message) and message != ""
    assert {:ok, 2} = test_eval("result = 1 + 1")
  end
end
