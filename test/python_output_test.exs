defmodule DSPex.Native.PythonOutputTest do
  # Python's prints and log records during a call reach the caller, so iex shows them and
  # ExUnit's capture helpers catch them, instead of going to the raw file descriptors.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO, only: [with_io: 1, with_io: 2]
  import ExUnit.CaptureLog, only: [with_log: 2]
  import DSPex.Native.TestHelpers
  alias DSPex.Native.Session

  @chatty """
  import logging, sys
  import dspy

  class Chatty(dspy.Module):
      def __init__(self):
          super().__init__()
          self.predict = dspy.Predict("text -> reply")

      def forward(self, text):
          print("printing", text)
          sys.stderr.write("to stderr " + text + "\\n")
          logging.getLogger("chatty").warning("warned about %s", text)
          return self.predict(text=text)
  """

  setup do
    s = Session.open!(name: "chatty", lm: dummy(%{"reply" => "ok"}))
    {:ok, ["Chatty"]} = Session.load_module(s, "chatty", @chatty)
    :ok = Session.create_program(s, "c", module: {:custom, "Chatty"})
    %{session: s}
  end

  # Runs `fun` with its stdout, stderr and log captured: `{result, out, err, log}`.
  defp captured(fun) do
    with_log([metadata: [:session, :python_logger]], fn ->
      with_io(:stderr, fn -> with_io(fun) end)
    end)
    |> then(fn {{{result, out}, err}, log} -> {result, out, err, log} end)
  end

  test "print and stdout writes go to the caller's group leader", %{session: s} do
    {result, out, _err, _log} = captured(fn -> Session.execute(s, "c", %{text: "hello"}) end)
    assert {:ok, %{"reply" => "ok"}} = result
    assert out =~ "printing hello"
  end

  test "stderr writes go to the caller's standard error", %{session: s} do
    {{:ok, _}, out, err, _log} = captured(fn -> Session.execute(s, "c", %{text: "there"}) end)
    assert err =~ "to stderr there"
    refute out =~ "to stderr"
  end

  test "logging records reach Logger with the session in the metadata", %{session: s} do
    {{:ok, _}, _out, _err, log} = captured(fn -> Session.execute(s, "c", %{text: "you"}) end)
    assert log =~ "warned about you"
    assert log =~ "session=#{s.id}"
    assert log =~ "python_logger=chatty"
  end

  test "two sessions' output goes to their own callers" do
    parent = self()

    for who <- ~w(a b) do
      spawn(fn ->
        s = Session.open!(lm: dummy(%{"reply" => "ok"}))
        {:ok, _} = Session.load_module(s, "chatty", @chatty)
        :ok = Session.create_program(s, "c", module: {:custom, "Chatty"})
        {_, out, _err, _log} = captured(fn -> Session.execute(s, "c", %{text: who}) end)
        send(parent, {who, out})
      end)
    end

    assert_receive {"a", out_a}, 10_000
    assert_receive {"b", out_b}, 10_000
    assert out_a =~ "printing a" and not (out_a =~ "printing b")
    assert out_b =~ "printing b" and not (out_b =~ "printing a")
  end
end
