defmodule DSPex.Native.OutputBackpressureTest do
  # Python's output never holds up a call: a flood, a slow, mute or dead group leader cost
  # output (with a line saying how much), never the call, its deadline or its caller.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO, only: [with_io: 1]
  import ExUnit.CaptureLog, only: [with_log: 1]
  import DSPex.Native.TestHelpers
  alias DSPex.Native.{Error, Session}

  @moduletag timeout: 120_000

  @module """
  import logging, sys, time, types
  import dspy

  probe = sys.modules.setdefault("dspex_test_probe", types.ModuleType("dspex_test_probe"))
  if not hasattr(probe, "events"):
      probe.events = []

  class Flood(dspy.Module):
      def forward(self, tag):
          probe.events.append(("started", tag))
          try:
              while True:
                  print("x" * 99)
          except BaseException as exc:
              probe.events.append((type(exc).__name__, tag))
              raise

  class Lines(dspy.Module):
      def forward(self, n):
          for _ in range(n):
              sys.stdout.write("y" * 99 + "\\n")
          return dspy.Prediction(written=n)

  class LateWords(dspy.Module):
      def forward(self, tag):
          probe.events.append(("started", tag))
          try:
              while True:
                  time.sleep(0.01)
          except BaseException:
              logging.getLogger("late").error("logged in except " + tag)
              raise
          finally:
              print("printed in finally " + tag)
              probe.events.append(("finally", tag))
  """

  setup do
    s = Session.open!()
    {:ok, _} = Session.load_module(s, "output", @module)

    for m <- ~w(Flood Lines LateWords),
        do: :ok = Session.create_program(s, m, module: {:custom, m})

    %{session: s}
  end

  defp tag, do: "out-#{System.unique_integer([:positive])}"

  # Runs `fun` in a process whose group leader is `leader`; returns what `fun` returned and
  # what was left in that process's mailbox afterwards.
  defp with_leader(leader, fun) do
    task =
      Task.async(fn ->
        Process.group_leader(self(), leader)
        result = fun.()
        {result, mailbox()}
      end)

    # A hang guard: before the fix, these calls never returned.
    case Task.yield(task, 60_000) || Task.shutdown(task) do
      {:ok, outcome} -> outcome
      nil -> flunk("the call did not return")
    end
  end

  # A group leader that takes io requests and answers none until told to.
  defp held_leader do
    spawn(fn -> held([]) end)
  end

  defp held(requests) do
    receive do
      {:io_request, _from, _reply_as, _request} = r ->
        held([r | requests])

      {:release, to} ->
        requests = Enum.reverse(requests)

        for {:io_request, from, reply_as, _} <- requests,
            do: send(from, {:io_reply, reply_as, :ok})

        send(
          to,
          {:released, for({:io_request, _, _, {:put_chars, _, text}} <- requests, do: text)}
        )

        answering([])

      {:requests, to} ->
        send(to, {:requests, Enum.reverse(requests)})
        held(requests)
    end
  end

  defp answering(texts) do
    receive do
      {:io_request, from, reply_as, {:put_chars, _, text}} ->
        send(from, {:io_reply, reply_as, :ok})
        answering([text | texts])

      {:texts, to} ->
        send(to, {:texts, Enum.reverse(texts)})
        answering(texts)
    end
  end

  @tag :tmp_dir
  test "a print flood into a file: the call still times out and cancels its job, and leaves nothing behind",
       %{session: s, tmp_dir: tmp} do
    path = Path.join(tmp, "out.txt")
    {:ok, file} = File.open(path, [:write, :utf8])

    {tag, result, left} =
      while_running(fn timeout ->
        tag = tag()

        {result, left} =
          with_leader(file, fn -> Session.execute(s, "Flood", %{tag: tag}, timeout: timeout) end)

        if started?(tag), do: {tag, result, left}
      end)

    assert {:error, %Error{reason: :timeout}} = result
    assert left == []
    assert eventually(fn -> spin_events(tag) == ["started", "Cancelled"] end, 10_000)
    :ok = File.close(file)
    # The file got output (as much as it could take), and nothing but whole lines and notes.
    assert File.read!(path) =~ String.duplicate("x", 99)
  end

  test "output beyond what a slow group leader takes is coalesced, and one line says how much was dropped",
       %{session: s} do
    leader = held_leader()

    {result, left} = with_leader(leader, fn -> Session.execute(s, "Lines", %{n: 2000}) end)

    assert {:ok, %{"written" => 2000}} = result
    assert left == []
    send(leader, {:release, self()})
    assert_receive {:released, texts}, 10_000
    line = String.duplicate("y", 99) <> "\n"
    # 64 KB went out one write at a time, the next 64 KB waited and went as one chunk, and
    # the rest (690 of the 2000 writes) was dropped and counted.
    {singles, [coalesced, note]} = Enum.split(texts, 655)
    assert singles == List.duplicate(line, 655)
    assert IO.iodata_to_binary(coalesced) == String.duplicate(line, 655)

    assert note ==
             "\n[dspex_native: 69000 bytes of Python output dropped (690 writes): " <>
               "the group leader did not keep up]\n"
  end

  test "a group leader that never answers costs the output, not the call", %{session: s} do
    mute = held_leader()

    {result, left} = with_leader(mute, fn -> Session.execute(s, "Lines", %{n: 3}) end)

    assert {:ok, %{"written" => 3}} = result
    assert left == []
    send(mute, {:requests, self()})
    assert_receive {:requests, [{:io_request, sink, _, {:put_chars, :unicode, text}} | _]}
    assert text == String.duplicate("y", 99) <> "\n"
    # The process waiting for the answers gives up on its own.
    ref = Process.monitor(sink)
    assert_receive {:DOWN, ^ref, :process, ^sink, _}, 15_000
  end

  test "a dead group leader costs the output, not the call (nor a crash)", %{session: s} do
    dead = spawn(fn -> :ok end)
    ref = Process.monitor(dead)
    assert_receive {:DOWN, ^ref, _, _, _}

    {result, left} = with_leader(dead, fn -> Session.execute(s, "Lines", %{n: 3}) end)

    assert {:ok, %{"written" => 3}} = result
    assert left == []
  end

  test "after a timeout nothing the job prints or logs reaches the caller", %{session: s} do
    {log, {out, tag}} =
      with_log(fn ->
        with_io(fn ->
          while_running(fn timeout ->
            tag = tag()

            assert {:error, %Error{reason: :timeout}} =
                     Session.execute(s, "LateWords", %{tag: tag}, timeout: timeout)

            if started?(tag) do
              # The job ran its except and finally blocks after the cancel.
              assert eventually(fn -> "finally" in spin_events(tag) end, 10_000)
              assert mailbox() == []
              tag
            end
          end)
        end)
        |> then(fn {tag, out} -> {out, tag} end)
      end)
      |> then(fn {result, log} -> {log, result} end)

    refute out =~ "printed in finally #{tag}"
    refute log =~ "logged in except #{tag}"
  end
end
