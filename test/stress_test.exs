defmodule DSPex.Native.StressTest do
  # 1,000 sessions, 50 processes doing random operations mixed with closes, owner exits and
  # dropped handles. Afterwards nothing may be left: no session or program alive in Python,
  # no queued job, no stray message, no dead worker. Reads global counters: runs alone.
  use ExUnit.Case, async: false

  import DSPex.Native.TestHelpers
  alias DSPex.Native.{Error, Session}

  @moduletag timeout: 300_000
  @processes 50
  @sessions_each 20
  @ops_each 120

  defp counts do
    s = DSPex.Native.stats(gc: true)
    {s.sessions, s.programs}
  end

  defp open_one(n) do
    owner = if rem(n, 3) == 0, do: spawn(fn -> Process.sleep(:infinity) end)
    opts = [name: "stress#{n}", lm: dummy(%{"answer" => "a#{n}"})]
    opts = if owner, do: Keyword.put(opts, :owner, owner), else: opts
    {Session.open!(opts), owner}
  end

  defp step({session, owner} = entry, n) do
    id = Enum.random(~w(p1 p2 p3))

    case :rand.uniform(12) do
      k when k <= 4 ->
        timeout = Enum.random([0, 1, 5, 5_000, 5_000, 5_000])

        case Session.execute(session, id, %{q: "?"}, timeout: timeout) do
          {:ok, %{"answer" => "a" <> _}} -> entry
          {:error, %Error{reason: r}} when r in [:not_found, :closed, :timeout] -> entry
        end

      k when k <= 6 ->
        case Session.create_program(session, id, signature: "q -> answer") do
          :ok -> entry
          {:error, %Error{reason: r}} when r in [:already_exists, :closed] -> entry
        end

      7 ->
        case Session.delete_program(session, id) do
          :ok -> entry
          {:error, %Error{reason: r}} when r in [:not_found, :closed] -> entry
        end

      8 ->
        case Session.reset(session) do
          :ok -> entry
          {:error, %Error{reason: :closed}} -> entry
        end

      9 ->
        # Close and open another.
        :ok = Session.close(session)
        open_one(n)

      10 ->
        # Drop the handle without closing: the GC must free it.
        open_one(n)

      11 when owner != nil ->
        # The owner exits: the session closes, wherever its handle is.
        Process.exit(owner, :kill)
        entry

      _ ->
        case Session.info(session) do
          {:ok, %{programs: p}} when p in 0..3 -> entry
          {:error, %Error{reason: :closed}} -> entry
        end
    end
  end

  test "random operations on 1,000 sessions leave nothing behind" do
    settle()
    baseline = counts()
    parent = self()

    for w <- 1..@processes do
      spawn_link(fn ->
        :rand.seed(:exsss, {w, 1, 2})
        entries = for i <- 1..@sessions_each, do: open_one(w * 1_000 + i)

        entries =
          Enum.reduce(1..@ops_each, entries, fn op, entries ->
            i = :rand.uniform(length(entries)) - 1
            List.update_at(entries, i, &step(&1, w * 1_000 + op))
          end)

        for {session, owner} <- entries do
          if :rand.uniform(2) == 1, do: Session.close(session)
          if owner, do: Process.exit(owner, :kill)
        end

        # Late answers of timed-out calls must never arrive.
        late = receive(do: (message -> [message]), after: (300 -> []))
        send(parent, {:done, w, late ++ mailbox()})
      end)
    end

    for w <- 1..@processes do
      assert_receive {:done, ^w, stray}, 240_000
      assert stray == [], "process #{w} got stray messages: #{inspect(stray, limit: 5)}"
    end

    settle()

    stats = DSPex.Native.stats(gc: true)

    # At most what there was before: sessions other tests held then may be gone by now.
    {sessions, programs} = baseline

    assert eventually(
             fn -> match?({s, p} when s <= sessions and p <= programs, counts()) end,
             30_000
           ),
           "left: #{inspect(counts())}, was #{inspect(baseline)}"

    # A worker's last handles, and the sessions of owners it killed, may drop just after
    # settle() saw the queues empty (its exit, the owners' monitors): they go soon after.
    assert eventually(fn ->
             s = DSPex.Native.stats()
             s.queued == 0 and s.releases_queued == 0
           end)

    assert stats.workers_alive >= stats.workers
    assert mailbox() == []
  end
end
