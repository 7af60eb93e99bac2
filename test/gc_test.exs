defmodule DSPex.Native.GCTest do
  # Sessions live exactly as long as the BEAM says: these tests read the runtime's global
  # counters, so they run alone (async: false runs after every async module).
  use ExUnit.Case, async: false

  import DSPex.Native.TestHelpers
  alias DSPex.Native.Session

  setup do
    # Handles that earlier tests left as garbage in long-lived processes (ExUnit's runner
    # keeps test contexts for a while), or in jobs still running, would be freed at random
    # moments: let all of that finish first.
    assert settle()
    :ok
  end

  defp counts do
    # gc: true collects Python-side cycles first (a traceback can keep a frame, and the
    # session in it, alive until then).
    s = DSPex.Native.stats(gc: true)
    {s.sessions, s.programs}
  end

  # Back to (or below: a session another module left behind may be freed meanwhile).
  defp back_to?({sessions, programs}) do
    fn ->
      {s, p} = counts()
      s <= sessions and p <= programs
    end
  end

  test "a session is freed in Python once the process that held it is gone" do
    baseline = counts()

    task =
      Task.async(fn ->
        s = Session.open!(name: "short-lived", lm: dummy(%{"answer" => "x"}))
        for n <- 1..3, do: :ok = Session.create_program(s, "p#{n}", signature: "q -> answer")
        {:ok, _} = Session.execute(s, "p1", %{q: "?"})
        # Keep the handle reachable until the process exits (a dead variable may be
        # collected by any garbage collection before that).
        Process.put(:session, s)
        {s.id, python_session(s.id)}
      end)

    {id, programs} = Task.await(task)
    assert programs == 3
    # No explicit close: the process exited, its heap (and the handle) went with it.
    assert eventually(fn -> python_session(id) == nil end, 10_000)

    assert eventually(back_to?(baseline), 10_000),
           "still #{inspect(counts())}, was #{inspect(baseline)}"
  end

  test "a test's session is cleaned up with no explicit call once the test process is gone" do
    baseline = counts()
    parent = self()

    # ExUnit runs each test in its own process; this models one.
    pid =
      spawn(fn ->
        s = Session.open!(lm: dummy(%{"answer" => "x"}))
        :ok = Session.create_program(s, "test_prog", signature: "q -> answer")
        Process.put(:session, s)
        send(parent, {:created, s.id, python_session(s.id)})
      end)

    assert_receive {:created, id, 1}, 10_000
    ref = Process.monitor(pid)
    assert_receive {:DOWN, ^ref, _, _, _}
    assert eventually(fn -> python_session(id) == nil end, 10_000)
    assert eventually(back_to?(baseline), 10_000)
  end

  test "1,000 sessions opened and dropped are all freed" do
    baseline = counts()

    1..1_000
    |> Task.async_stream(
      fn n ->
        s = Session.open!(name: "bulk#{n}")
        :ok = Session.create_program(s, "p", signature: "q -> a")
      end,
      max_concurrency: 16,
      timeout: 30_000
    )
    |> Stream.run()

    assert eventually(back_to?(baseline), 10_000),
           "still #{inspect(counts())}, was #{inspect(baseline)}"

    assert DSPex.Native.stats().handles <= elem(baseline, 0)
  end

  test "a handle kept elsewhere keeps the session alive; dropping it frees the session" do
    baseline = counts()
    {:ok, agent} = Agent.start_link(fn -> nil end)

    opener =
      Task.async(fn ->
        s = Session.open!(lm: dummy(%{"answer" => "kept"}))
        :ok = Session.create_program(s, "p", signature: "q -> answer")
        Agent.update(agent, fn _ -> s end)
      end)

    Task.await(opener)
    # The opener is gone, but the agent still holds the handle.
    ref = Process.monitor(opener.pid)
    assert_receive {:DOWN, ^ref, :process, _, _}
    kept = Agent.get(agent, & &1)
    assert {:ok, %{"answer" => "kept"}} = Session.execute(kept, "p", %{q: "?"})
    kept = nil
    _ = kept

    Agent.stop(agent)
    assert eventually(back_to?(baseline), 10_000)
  end
end
