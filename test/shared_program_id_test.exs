# Several async test modules that all use the program ID "test_prog" at the same time, as
# test suites sharing the old port bridge could not. ExUnit runs async modules concurrently.
for letter <- ~w(A B C D) do
  defmodule Module.concat(DSPex.Native, "SharedProgramId#{letter}Test") do
    use ExUnit.Case, async: true

    import DSPex.Native.TestHelpers
    alias DSPex.Native.Session

    @answer "module #{letter}"

    setup do
      session = Session.open!(name: @answer, lm: dummy(%{"answer" => @answer}))
      :ok = Session.create_program(session, "test_prog", signature: "question -> answer")
      %{session: session}
    end

    for n <- 1..5 do
      test "test_prog answers with this module's LM (#{n})", %{session: s} do
        for _ <- 1..5 do
          assert {:ok, %{"answer" => @answer}} = Session.execute(s, "test_prog", %{question: "?"})
        end

        # Re-creating the ID never collides with the other modules' programs.
        assert :ok =
                 Session.create_program(s, "test_prog",
                   signature: "question -> answer",
                   replace: true
                 )

        assert {:ok, ["test_prog"]} = Session.list_programs(s)
      end
    end
  end
end
