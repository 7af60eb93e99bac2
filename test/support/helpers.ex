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

  @doc """
  Runs `script` in a fresh BEAM (one interpreter per BEAM: start-up tests need their own)
  with this build's code and `env`; returns its output. Fails the test if it does not exit
  within `timeout` ms.
  """
  def run_beam(script, env, timeout \\ 90_000) do
    ebin = Path.join(Mix.Project.build_path(), "lib/dspex_native/ebin")

    task =
      Task.async(fn ->
        System.cmd("elixir", ["-pa", ebin, "-e", script], env: env, stderr_to_stdout: true)
      end)

    {output, status} = Task.await(task, timeout)
    if status != 0, do: raise("the BEAM exited with #{status}:\n#{output}")
    output
  end

  @doc "Messages in the mailbox right now, without waiting."
  def mailbox do
    {:messages, messages} = Process.info(self(), :messages)
    messages
  end
end
