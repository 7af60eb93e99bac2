defmodule DSPex.Native.TestHelpers do
  @moduledoc false

  @doc "Polls `fun` until it returns a truthy value or `timeout` ms pass; returns the last value."
  def eventually(fun, timeout \\ 1_000, interval \\ 10) do
    deadline = System.monotonic_time(:millisecond) + timeout
    poll(fun, deadline, interval)
  end

  defp poll(fun, deadline, interval) do
    value = fun.()

    cond do
      value -> value
      System.monotonic_time(:millisecond) >= deadline -> value
      true -> Process.sleep(interval) && poll(fun, deadline, interval)
    end
  end

  @doc "A DummyLM spec that answers every prompt with `fields`."
  def dummy(fields) when is_map(fields), do: {:dummy, %{"" => fields}}

  @doc "Messages in the mailbox right now, without waiting."
  def mailbox do
    {:messages, messages} = Process.info(self(), :messages)
    messages
  end
end
