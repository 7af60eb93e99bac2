defmodule DSPex.Native.ReliabilityTest do
  # Owned sessions, panics, and races with defined outcomes.
  use ExUnit.Case, async: true

  import DSPex.Native.TestHelpers
  alias DSPex.Native.{Error, Session}

  describe "owned sessions" do
    test "close when the owner exits, even with the handle copied elsewhere" do
      owner = spawn(fn -> Process.sleep(:infinity) end)
      s = Session.open!(owner: owner, lm: dummy(%{"answer" => "owned"}))
      :ok = Session.create_program(s, "p", signature: "q -> answer")

      # Copies in ETS and in another process's state do not keep it open.
      table = :ets.new(:handles, [:public])
      :ets.insert(table, {:s, s})
      {:ok, holder} = Agent.start_link(fn -> s end)

      assert {:ok, %{"answer" => "owned"}} = Session.execute(s, "p", %{q: "?"})
      Process.exit(owner, :kill)

      [{:s, copy}] = :ets.lookup(table, :s)

      assert eventually(fn ->
               match?({:error, %Error{reason: :closed}}, Session.list_programs(copy))
             end)

      assert {:error, %Error{reason: :closed}} =
               Session.execute(Agent.get(holder, & &1), "p", %{q: "?"})
    end

    test "an owner that is already dead closes the session at once" do
      dead = spawn(fn -> :ok end)
      ref = Process.monitor(dead)
      assert_receive {:DOWN, ^ref, _, _, _}
      assert {:ok, s} = Session.open(owner: dead)
      assert {:error, %Error{reason: :closed}} = Session.list_programs(s)
    end

    test "without an owner, the opener's exit does not close a session held elsewhere" do
      {:ok, holder} = Agent.start_link(fn -> nil end)

      Task.async(fn ->
        s = Session.open!(lm: dummy(%{"answer" => "kept"}))
        :ok = Session.create_program(s, "p", signature: "q -> answer")
        Agent.update(holder, fn _ -> s end)
      end)
      |> Task.await()

      assert {:ok, %{"answer" => "kept"}} =
               Session.execute(Agent.get(holder, & &1), "p", %{q: "?"})
    end

    test "owner must be a pid" do
      assert {:error, %Error{reason: :invalid_argument}} = Session.open(owner: :me)
    end
  end

  describe "panics" do
    # In a BEAM of their own: each caught panic is reported on stderr, kept out of the run.
    test "a panic in a NIF or a worker is an error for its caller; the worker lives on" do
      output =
        run_beam(
          start_source("[warm: false]") <>
            ~S"""
            alias DSPex.Native.{Job, NIF}
            IO.puts("NIF #{inspect(Job.safe(&NIF.test_panic/0))}")
            before = DSPex.Native.stats()

            results =
              for _ <- 1..(before.workers * 2) do
                {:error, e} = Job.run({:global_call, ["test_panic", nil]}, 5_000)
                {e.reason, e.message =~ "panicked"}
              end

            IO.puts("WORKER #{inspect(Enum.uniq(results))}")
            IO.puts("ALIVE #{DSPex.Native.stats().workers_alive >= before.workers}")
            IO.puts("PING #{inspect(DSPex.Native.ping(:still_here))}")
            """,
          []
        )

      assert beam_line(output, "NIF") =~ ~r/^\{:error, \{:internal_error, ".*", nil, nil\}\}$/
      assert beam_line(output, "WORKER") == "[internal_error: true]"
      assert beam_line(output, "ALIVE") == "true"
      assert beam_line(output, "PING") == "{:ok, :still_here}"
    end
  end

  describe "an elastic pool" do
    test "grows while calls wait outside the GIL, so they run side by side" do
      stats = DSPex.Native.stats()
      callers = stats.workers + 24

      # Each call sleeps in Python with the GIL released, as an LM call waits on HTTP.
      results =
        for _ <- 1..callers do
          Task.async(fn ->
            test_eval("import time\ntime.sleep(0.5)\nresult = 'slept'", 30_000)
          end)
        end

      grown = eventually(fn -> DSPex.Native.stats().workers_alive >= callers end, 10_000)
      assert Enum.all?(Task.await_many(results, 60_000), &(&1 == {:ok, "slept"}))
      assert grown, "the pool did not grow past #{stats.workers} workers"
      assert DSPex.Native.stats().workers_alive <= stats.max_workers
    end
  end

  describe "races" do
    setup do
      s = Session.open!(lm: dummy(%{"answer" => "ok"}))
      for id <- ~w(a b c), do: :ok = Session.create_program(s, id, signature: "q -> answer")
      %{session: s}
    end

    # What each call may return while the session changes under it (see Session's moduledoc).
    defp allowed?({:execute, {:ok, %{"answer" => "ok"}}}), do: true
    defp allowed?({:execute, {:ok, %{"answer" => "new"}}}), do: true
    defp allowed?({:execute, {:error, %Error{reason: r}}}), do: r in [:not_found, :closed, :no_lm]
    defp allowed?({_, :ok}), do: true
    defp allowed?({_, {:ok, _}}), do: true

    defp allowed?({_, {:error, %Error{reason: r}}}),
      do: r in [:closed, :not_found, :already_exists]

    test "close, reset, delete and configure during executions from many processes", %{session: s} do
      ops = [
        fn -> {:execute, Session.execute(s, Enum.random(~w(a b c)), %{q: "?"})} end,
        fn -> {:execute, Session.execute(s, Enum.random(~w(a b c)), %{q: "?"})} end,
        fn -> {:execute, Session.execute(s, Enum.random(~w(a b c)), %{q: "?"})} end,
        fn -> {:reset, Session.reset(s)} end,
        fn -> {:delete, Session.delete_program(s, Enum.random(~w(a b c)))} end,
        fn ->
          {:create, Session.create_program(s, Enum.random(~w(a b c)), signature: "q -> answer")}
        end,
        fn ->
          {:configure, Session.configure(s, lm: Enum.random([nil, dummy(%{"answer" => "new"})]))}
        end,
        fn -> {:list, Session.list_programs(s)} end,
        fn -> {:info, Session.info(s)} end
      ]

      results =
        for n <- 1..400 do
          Task.async(fn ->
            if n == 300, do: {:close, Session.close(s)}, else: Enum.random(ops).()
          end)
        end
        |> Task.await_many(30_000)

      for result <- results, do: assert(allowed?(result), inspect(result))
      # After the close, everything is :closed.
      assert {:error, %Error{reason: :closed}} = Session.execute(s, "a", %{q: "?"})
    end
  end
end
