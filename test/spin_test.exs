defmodule DSPex.Native.SpinTest do
  # A caller whose calls are short polls its mailbox for a moment before blocking (see
  # DSPex.Native.Spin): while it polls, deadlines, output and answers behave as when it
  # blocks. Not async: polling depends on how many calls are in flight in the whole BEAM.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
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

  test "a caller polls only after a fast call of the same kind, and only when few calls are in flight" do
    Process.delete({Spin, {:session_call, "execute"}})
    assert {counter, nil} = Spin.enter(@execute), "never called: no poll"
    Spin.leave(counter)

    Spin.remember(@execute, {0.01, 0.25})
    assert {counter, until} = Spin.enter(@execute)
    assert is_integer(until) and Spin.polling?(until)
    Spin.leave(counter)

    # Another kind of call keeps its own record.
    assert {counter, nil} = Spin.enter({:session_call, [nil, "compile", nil]})
    Spin.leave(counter)

    # More calls in flight than schedulers: nobody polls.
    held = for _ <- 1..System.schedulers_online(), do: Spin.enter(@execute)
    assert {counter, nil} = Spin.enter(@execute)
    Spin.leave(counter)
    for {c, _} <- held, do: Spin.leave(c)

    Spin.remember(@execute, {0.01, 25.0})
    assert {counter, nil} = Spin.enter(@execute), "the last call was slow: no poll"
    Spin.leave(counter)
    Spin.remember(@execute, nil)
    assert {counter, nil} = Spin.enter(@execute), "no answer says nothing"
    Spin.leave(counter)
  end

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
          {counter, until} = Spin.enter(@execute)
          Spin.leave(counter)
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
