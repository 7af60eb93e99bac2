defmodule DSPex.Native.ClusterTest do
  # Sessions on other nodes (started here with :peer on 127.0.0.1), called from the test
  # node; their lifetime across nodes; placement; and nodes that die with calls in flight.
  use ExUnit.Case, async: false

  import DSPex.Native.TestHelpers
  alias DSPex.Native.{Error, Peer, Py, Ref, Session}
  alias DSPex.Native.Test.OpenAIServer

  @moduletag timeout: 180_000

  setup_all do
    {_, 0} = System.cmd("epmd", ["-daemon"])

    unless Node.alive?() do
      {:ok, _} = Node.start(:"dspex_test@127.0.0.1", :longnames)
    end

    {:ok, a} = Peer.start()
    {:ok, b} = Peer.start()
    on_exit(fn -> for n <- [a, b], do: Peer.stop(n) end)
    %{a: a, b: b}
  end

  defp remote_sessions(node), do: :erpc.call(node, DSPex.Native, :stats, [[gc: true]]).sessions

  test "the core scenarios against sessions on two peers at once", %{a: a, b: b} do
    sa = Session.open!(node: a, name: "on a", lm: dummy(%{"answer" => "from a"}))
    sb = Session.open!(node: b, name: "on b", lm: dummy(%{"answer" => "from b"}))
    assert inspect(sa) =~ ~s("on a" on #{a})

    for s <- [sa, sb],
        do: :ok = Session.create_program(s, "prog_1", signature: "question -> answer")

    [ra, rb] =
      [
        Task.async(fn -> Session.execute(sa, "prog_1", %{question: "?"}) end),
        Task.async(fn -> Session.execute(sb, "prog_1", %{question: "?"}) end)
      ]
      |> Task.await_many(30_000)

    assert ra == {:ok, %{"answer" => "from a"}}
    assert rb == {:ok, %{"answer" => "from b"}}

    assert {:error, %Error{reason: :already_exists}} =
             Session.create_program(sa, "prog_1", signature: "q -> a")

    assert {:error, %Error{reason: :not_found}} = Session.execute(sb, "nope", %{question: "?"})
    assert {:ok, ["prog_1"]} = Session.list_programs(sa)
    assert {:ok, %{name: "on a", programs: 1}} = Session.info(sa)
    assert :ok = Session.close(sa)
    assert {:error, %Error{reason: :closed}} = Session.list_programs(sa)
  end

  test "a remote session is freed on its node once the caller's handle is collected", %{a: a} do
    # Sessions earlier tests opened on `a` are freed once their owners' handles are
    # collected, asynchronously: counted from a node they have all left.
    assert eventually(fn -> remote_sessions(a) == 0 end, 30_000)
    before = 0

    {:ok, pid} =
      Task.start(fn ->
        s = Session.open!(node: a, lm: dummy(%{"answer" => "x"}))
        :ok = Session.create_program(s, "p", signature: "q -> answer")
        Process.put(:session, s)
        receive do: (:exit -> :ok)
      end)

    assert eventually(fn -> remote_sessions(a) == before + 1 end, 30_000)
    send(pid, :exit)
    assert eventually(fn -> remote_sessions(a) == before end, 30_000)
  end

  test "a remote session closes when its owner exits, even with its handle kept", %{a: a} do
    owner = spawn(fn -> Process.sleep(:infinity) end)
    s = Session.open!(node: a, owner: owner)
    :ok = Session.create_program(s, "p", signature: "q -> a")
    Process.exit(owner, :kill)

    assert eventually(
             fn ->
               match?({:error, %Error{reason: :closed}}, Session.list_programs(s))
             end,
             5_000
           )
  end

  test "sessions a lost node held elsewhere are freed when the connection goes", %{a: a} do
    # Counted from a node earlier tests' sessions have left (they are freed asynchronously).
    assert eventually(fn -> remote_sessions(a) == 0 end, 30_000)
    before = 0
    {:ok, caller} = Peer.start()

    # The caller node opens two sessions on `a` and keeps them (evaluated there: this test
    # module's code is not loaded on peers).
    {:ok, _} =
      :erpc.call(caller, Code, :eval_string, [
        """
        sessions = for _ <- 1..2, do: DSPex.Native.Session.open!(node: :"#{a}")
        :persistent_term.put(:kept_sessions, sessions)
        :ok
        """
      ])
      |> then(fn {result, _binding} -> {result, nil} end)

    assert remote_sessions(a) == before + 2
    Peer.stop(caller)
    assert eventually(fn -> remote_sessions(a) == before end, 30_000)
  end

  test "Python references on a session of another node live and die there", %{a: a} do
    s = Session.open!(node: a, lm: dummy(%{"reasoning" => "r", "answer" => "4"}))
    refs = fn -> :erpc.call(a, DSPex.Native, :stats, [[gc: true]]).refs end
    before = refs.()

    cot = Py.call!(s, "dspy.ChainOfThought", ["question -> answer"])
    assert %Ref{type: "ChainOfThought"} = cot
    assert {:ok, %{"answer" => "4"}} = Py.call(s, cot, [], question: "2 + 2?")
    assert {:ok, []} = Py.attr(Py.attr!(cot, "predict"), "demos")
    :ok = Session.put_program(s, "cot", cot)
    assert {:ok, %{"answer" => "4"}} = Session.execute(s, "cot", %{question: "?"})
    assert refs.() >= before + 1

    # Dropped here: the handles' collection releases the objects on `a`.
    cot = nil
    settle()
    :ok = :erpc.call(a, DSPex.Native.TestHelpers, :settle, []) && :ok
    assert eventually(fn -> refs.() == before end, 30_000)
    refute cot
  end

  test "a session on another node streams; halting early cancels it", %{a: a} do
    {:ok, server} =
      OpenAIServer.start(
        chunk_delay_ms: 5,
        reply: fn _ -> OpenAIServer.dspy_reply(%{"answer" => "one two three four five six"}) end
      )

    lm = {"openai/test-model", api_base: server.url, api_key: "sk-test", cache: false}
    s = Session.open!(node: a, lm: lm)
    :ok = Session.create_program(s, "qa", signature: "question -> answer")

    items = Enum.to_list(Session.stream(s, "qa", %{question: "?"}, timeout: 120_000))
    assert [_, _ | _] = for({:chunk, "answer", text} <- items, do: text)
    assert {:done, %{"answer" => "one two three four five six"}} = List.last(items)

    assert [{:chunk, "answer", _}] =
             Enum.take(Session.stream(s, "qa", %{question: "?"}, timeout: 120_000), 1)

    refute_receive _, 200
  end

  test ":least_loaded spreads sessions over the peers", %{a: a, b: b} do
    sessions = for _ <- 1..100, do: Session.open!(placement: {:nodes, [a, b]})
    counts = Enum.frequencies_by(sessions, & &1.node)
    assert Map.keys(counts) |> Enum.sort() == Enum.sort([a, b])
    assert abs(counts[a] - counts[b]) <= 6, inspect(counts)
    Enum.each(sessions, &Session.close/1)
    assert [_ | _] = DSPex.Native.cluster_stats()
  end

  @slow """
  import os, time
  import dspy

  class Slow(dspy.Module):
      def forward(self, q):
          time.sleep(30)
          return dspy.Prediction(a=q)

  class Crash(dspy.Module):
      def forward(self, q):
          os.abort()
  """

  test "a peer killed with calls in flight: callers get :nodedown, the rest goes on", %{b: b} do
    {:ok, doomed} = Peer.start()
    s = Session.open!(node: doomed, lm: dummy(%{"a" => "x"}))
    {:ok, _} = Session.load_module(s, "slow", @slow)
    :ok = Session.create_program(s, "slow", module: {:custom, "Slow"})
    calls = for _ <- 1..3, do: Task.async(fn -> Session.execute(s, "slow", %{q: "x"}) end)

    in_flight = fn ->
      stats = :erpc.call(doomed, DSPex.Native.NIF, :pool_stats, [])
      stats["workers_alive"] - stats["workers_idle"] >= 3
    end

    assert eventually(in_flight, 10_000)
    :ok = Peer.stop(doomed)

    for result <- Task.await_many(calls, 30_000) do
      assert {:error, %Error{reason: :nodedown}} = result
    end

    assert {:error, %Error{reason: :nodedown}} = Session.list_programs(s)
    # The test node and the other peer serve on.
    other = Session.open!(node: b, lm: dummy(%{"answer" => "alive"}))
    :ok = Session.create_program(other, "p", signature: "question -> answer")
    assert {:ok, %{"answer" => "alive"}} = Session.execute(other, "p", %{question: "?"})
  end

  test "Python aborting inside a sidecar kills only the sidecar" do
    {:ok, sidecar} = Peer.start()
    s = Session.open!(node: sidecar, lm: dummy(%{"a" => "x"}))
    {:ok, _} = Session.load_module(s, "crash", @slow)
    :ok = Session.create_program(s, "crash", module: {:custom, "Crash"})
    assert {:error, %Error{reason: :nodedown}} = Session.execute(s, "crash", %{q: "x"})
    refute sidecar in Node.list()
    assert {:ok, :alive} = DSPex.Native.ping(:alive)
    Peer.stop(sidecar)
  end
end
