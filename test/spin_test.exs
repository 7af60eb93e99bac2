defmodule DSPex.Native.SpinTest do
  # A caller whose calls are short polls its mailbox for a moment before blocking (see
  # DSPex.Native.Spin): while it polls, deadlines, output and answers behave as when it
  # blocks. Not async: polling depends on what else the BEAM runs.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  import DSPex.Native.TestHelpers
  alias DSPex.Native.{Error, Session, Spin}

  @module """
  import time
  import dspy

  class SleepThenPrint(dspy.Module):
      def forward(self, us):
          time.sleep(us / 1_000_000)
          print("woke after", us, "us")
          return dspy.Prediction(slept=us)
  """

  @execute {:session_call, [nil, "execute", nil]}

  @tag :tmp_dir
  test "a caller polls only after a fast call of the same kind, and only while the BEAM and the pool are nearly idle",
       %{tmp_dir: tmp} do
    Process.delete({Spin, {:session_call, "execute"}})
    assert Spin.until(@execute) == nil, "never called: no poll"

    Spin.remember(@execute, {0.01, 0.25})
    # Leftovers of earlier tests may keep the schedulers busy a moment.
    assert eventually(fn -> Spin.until(@execute) != nil end, 10_000)
    assert Spin.polling?(Spin.until(@execute))

    assert Spin.until({:session_call, [nil, "compile", nil]}) == nil,
           "another kind: its own record"

    # More processes that want to run than schedulers: nobody polls, and a poll stops (a
    # deadline far ahead, so only the busy schedulers can stop it).
    far = System.monotonic_time(:microsecond) + 60_000_000
    assert eventually(fn -> Spin.polling?(far) end, 10_000)
    busy = for _ <- 1..(2 * System.schedulers_online()), do: spawn(fn -> spin_forever() end)
    assert eventually(fn -> Spin.until(@execute) == nil and not Spin.polling?(far) end, 10_000)
    for pid <- busy, do: Process.exit(pid, :kill)
    assert eventually(fn -> Spin.until(@execute) != nil end, 10_000)

    # As many jobs queued or running as schedulers: nobody polls.
    flag = Path.join(tmp, "go")
    n = System.schedulers_online()

    held =
      for i <- 1..n, do: Task.async(fn -> test_eval(held_source("held#{i}", flag), 60_000) end)

    assert eventually(fn -> DSPex.Native.NIF.pool_load() >= n end, 10_000)
    assert Spin.until(@execute) == nil
    File.write!(flag, "")
    assert Enum.all?(Task.await_many(held, 20_000), &match?({:ok, _}, &1))
    assert eventually(fn -> Spin.until(@execute) != nil end, 10_000)

    Spin.remember(@execute, {0.01, 25.0})
    assert Spin.until(@execute) == nil, "the last call was slow: no poll"
    Spin.remember(@execute, nil)
    assert Spin.until(@execute) == nil, "no answer says nothing"
  end

  defp spin_forever, do: spin_forever()

  test "while polling, deadlines expire, output arrives and nothing strays" do
    s = Session.open!()
    {:ok, _} = Session.load_module(s, "spin", @module)
    :ok = Session.create_program(s, "p", module: {:custom, "SleepThenPrint"})

    {outcomes, out} =
      with_io(fn ->
        for n <- 1..400 do
          # Every other call is fast (and has time to answer), so the kind stays fast and
          # the next call polls; the others sleep around their 1 ms deadline, inside the
          # polling budget.
          {us, timeout} = if rem(n, 2) == 0, do: {0, 5_000}, else: {500 + rem(n * 37, 1_000), 1}
          until = Spin.until(@execute)
          result = Session.execute(s, "p", %{us: us}, timeout: timeout)
          {us, until != nil, result}
        end
      end)

    stray =
      receive do
        message -> message
      after
        500 -> :none
      end

    assert stray == :none
    assert Enum.any?(outcomes, fn {_, polled, _} -> polled end), "no call polled"

    for {0, _, result} <- outcomes, do: assert({:ok, %{"slept" => 0}} = result)

    for {us, _, result} <- outcomes do
      case result do
        {:ok, %{"slept" => ^us}} -> :ok
        {:error, %Error{reason: :timeout}} -> :ok
        other -> flunk("#{us} µs: #{inspect(other)}")
      end
    end

    answered = Enum.count(outcomes, &match?({_, _, {:ok, _}}, &1))
    assert answered > 0
    # Each answered call printed before it answered, and its output came with it.
    assert length(Regex.scan(~r/woke after/, out)) >= answered
  end
end
