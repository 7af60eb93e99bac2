defmodule Bench.Machine do
  @moduledoc """
  What else the machine is doing: the CPU that processes other than the bench's own
  (this BEAM, the plain-Python process, the port bridge) use while a turn runs, the load
  average, and waits for this BEAM to be quiet. Figures come from /proc, in clock ticks
  (10 ms).
  """

  @tick_ms 10

  @doc "Registers an OS process of the bench's own (a baseline's interpreter)."
  def own(os_pid), do: :persistent_term.put(__MODULE__, [os_pid | own_pids()])

  defp own_pids, do: :persistent_term.get(__MODULE__, [])

  @doc """
  Runs `fun` and returns `{result, others}`: `others` is the CPU (in cores, averaged over
  the run) that every process but the bench's own used meanwhile.
  """
  def others_during(fun) do
    m0 = busy_ticks()
    o0 = own_ticks()
    t0 = System.monotonic_time(:millisecond)
    result = fun.()
    wall = max(System.monotonic_time(:millisecond) - t0, 1)
    foreign = busy_ticks() - m0 - (own_ticks() - o0)
    {result, max(foreign, 0) * @tick_ms / wall}
  end

  # Busy ticks of the whole machine: user, nice, system, irq, softirq, steal.
  defp busy_ticks do
    ["cpu" | fields] =
      File.read!("/proc/stat") |> String.split("\n", parts: 2) |> hd() |> String.split()

    [user, nice, system, _idle, _iowait, irq, softirq, steal | _] =
      Enum.map(fields, &String.to_integer/1)

    user + nice + system + irq + softirq + steal
  end

  defp own_ticks, do: Enum.sum(Enum.map(["self" | own_pids()], &process_ticks/1))

  # utime + stime of a process (all its threads); 0 once it is gone.
  defp process_ticks(pid) do
    case File.read("/proc/#{pid}/stat") do
      {:ok, stat} ->
        # Past the command name (which may hold spaces), utime and stime are fields 12 and 13.
        [_, rest] = String.split(stat, ") ", parts: 2)
        [u, s] = rest |> String.split() |> Enum.slice(11, 2)
        String.to_integer(u) + String.to_integer(s)

      {:error, _} ->
        0
    end
  end

  @doc "Waits (up to `timeout` ms) until other processes use under 0.1 cores over 200 ms."
  def calm(timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout

    Stream.repeatedly(fn ->
      {_, others} = others_during(fn -> Process.sleep(200) end)
      others < 0.1 or System.monotonic_time(:millisecond) > deadline
    end)
    |> Enum.find(& &1)

    :ok
  end

  @doc """
  Waits (up to `timeout` ms) until this BEAM uses at most 10% of a core over 200 ms (for
  instance, until the runtime's background import of litellm is done).
  """
  def quiet(timeout \\ 20_000) do
    deadline = System.monotonic_time(:millisecond) + timeout

    Stream.repeatedly(fn ->
      c0 = process_ticks("self")
      Process.sleep(200)
      process_ticks("self") - c0 <= 2 or System.monotonic_time(:millisecond) > deadline
    end)
    |> Enum.find(& &1)

    :ok
  end

  def load_average do
    [one | _] = String.split(File.read!("/proc/loadavg"))
    String.to_float(one)
  end

  def info do
    {cpu, _} = System.cmd("sh", ["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"])

    %{
      cores: System.schedulers_online(),
      cpu: String.trim(cpu),
      otp: System.otp_release(),
      elixir: System.version(),
      workers: DSPex.Native.stats().workers
    }
  end
end
