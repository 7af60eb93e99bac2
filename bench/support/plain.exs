defmodule Bench.Plain do
  @moduledoc """
  The plain-Python contender: one long-lived `python bench/plain_python.py serve` driven
  over a port, one JSON line each way per request, warm from one round to the next.
  """

  alias DSPex.Native.Test.OpenAIServer.JSON

  @script Path.expand("../plain_python.py", __DIR__)

  def python, do: Path.join(DSPex.Native.Environment.venv(), "bin/python")

  @doc "Starts the process; `await/1` waits until it has imported dspy."
  def start do
    Port.open({:spawn_executable, python()}, [
      {:line, 1_000_000},
      :binary,
      :exit_status,
      args: [@script, "serve"],
      env: [{~c"LITELLM_LOCAL_MODEL_COST_MAP", ~c"True"}]
    ])
  end

  def await(port) do
    %{"ready" => true} = reply(port, 120_000)
    port
  end

  @doc "Sends one request (a map with \"cmd\") and returns the decoded answer."
  def call(port, request, timeout \\ 300_000) do
    true = Port.command(port, [JSON.encode!(request), "\n"])
    reply(port, timeout)
  end

  defp reply(port, timeout) do
    receive do
      {^port, {:data, {:eol, line}}} -> JSON.decode!(line)
      {^port, {:exit_status, status}} -> raise "plain_python.py exited (#{status})"
    after
      timeout -> raise "plain_python.py did not answer in #{timeout} ms"
    end
  end

  def stop(port), do: Port.close(port)

  @doc "A cold `import dspy` in a fresh Python process, in ms."
  def import_ms do
    {out, 0} =
      System.cmd(python(), [@script, "import_time"],
        env: [{"LITELLM_LOCAL_MODEL_COST_MAP", "True"}]
      )

    JSON.decode!(out |> String.split("\n", trim: true) |> List.last())["import_dspy_s"] * 1_000
  end
end
