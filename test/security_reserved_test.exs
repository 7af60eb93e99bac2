defmodule DSPex.Native.SecurityReservedTest do
  # Field names that DSPy's modules treat as control arguments (dspy.Predict pops `config`,
  # `demos`, `lm`, `signature` from its keyword arguments; ReAct pops `max_iters`; the
  # modules add `reasoning`, `trajectory`, ... themselves) are refused, so an input filled
  # from end-user data can never redirect the LM, inject demos or clash with DSPy's fields.
  use ExUnit.Case, async: true

  import DSPex.Native.Test.Security
  alias DSPex.Native.{Error, Session}
  alias DSPex.Native.Test.OpenAIServer

  @moduletag :capture_log

  @base ~w(signature demos config lm prediction new_signature completed)
  @react_only ~w(max_iters trajectory next_thought next_tool_name next_tool_args reasoning)
  @reserved %{
    :predict => @base,
    :chain_of_thought => ["reasoning" | @base],
    :react => @base ++ @react_only,
    {:custom, "Wrapper"} => @base
  }

  @wrapper """
  import dspy

  class Wrapper(dspy.Module):
      def __init__(self, signature):
          super().__init__()
          self.predict = dspy.Predict(signature)

      def forward(self, **kwargs):
          return self.predict(**kwargs)

  class Free(dspy.Module):
      # No signature of its own: it takes whatever inputs execute/4 passes.
      def __init__(self):
          super().__init__()
          self.predict = dspy.Predict("question -> answer")

      def forward(self, **kwargs):
          return self.predict(**kwargs)
  """

  defp tools do
    [%{name: "noop", description: "does nothing", args: [x: :string], fun: fn _ -> "ok" end}]
  end

  defp module_opts(:react), do: [module: :react, tools: tools()]
  defp module_opts(kind), do: [module: kind]

  # The four ways to use `name`: as an input or an output, in a string or a structure.
  defp signatures(name) do
    [
      {"input, string", "question, #{name} -> answer"},
      {"output, string", "question -> answer, #{name}"},
      {"input, structured", %{inputs: [:question, name], outputs: [:answer]}},
      {"output, structured", %{inputs: [:question], outputs: [:answer, name]}}
    ]
  end

  defp problems(result, name) do
    case result do
      {:error, %Error{reason: :invalid_signature, message: m}} ->
        cond do
          not (m =~ ~r/\b#{name}\b/) -> ["message does not name #{name}: #{m}"]
          not (m =~ "reserved") -> ["message does not say it is reserved: #{m}"]
          true -> []
        end

      other ->
        ["expected :invalid_signature, got #{inspect(other, limit: 5)}"]
    end
  end

  defp session do
    s = Session.open!(lm: {:dummy, %{"" => %{"answer" => "ok"}}})
    {:ok, ["Free", "Wrapper"]} = Session.load_module(s, "wrappers", @wrapper)
    s
  end

  test "create_program refuses every reserved name, for every module kind" do
    s = session()

    failures =
      for {kind, names} <- @reserved,
          name <- names,
          {how, sig} <- signatures(name),
          id = "#{inspect(kind)} #{name} #{how}",
          result = Session.create_program(s, id, [signature: sig] ++ module_opts(kind)),
          problem <- problems(result, name),
          do: "  #{id}: #{problem}"

    assert failures == [], "reserved names misbehaved:\n" <> Enum.join(failures, "\n")
    assert Session.list_programs(s) == {:ok, []}
  end

  test "import_program refuses every reserved name in an exported signature" do
    s = session()

    failures =
      for kind <- [:predict, :chain_of_thought],
          name <- @reserved[kind],
          {how, sig} <- signatures(name) do
        # A genuine export of the same shape, with the placeholder field renamed.
        genuine_sig =
          if is_binary(sig),
            do: String.replace(sig, ~r/\b#{name}\b/, "extra"),
            else:
              Map.new(sig, fn {k, v} ->
                {k, Enum.map(v, &if(&1 == name, do: "extra", else: &1))}
              end)

        exported = genuine_export(genuine_sig, kind)

        exported =
          if is_binary(sig),
            do: Map.put(exported, "signature", sig),
            else:
              update_in(exported, ["signature"], fn spec ->
                Map.new(spec, fn
                  {k, fields} when k in ["inputs", "outputs"] ->
                    {k,
                     Enum.map(fields, fn [f | rest] ->
                       [if(f == "extra", do: name, else: f) | rest]
                     end)}

                  other ->
                    other
                end)
              end)

        id = "#{kind} #{name} #{how}"

        for problem <- problems(Session.import_program(s, id, exported), name),
            do: "  #{id}: #{problem}"
      end
      |> List.flatten()

    assert failures == [], "reserved names misbehaved:\n" <> Enum.join(failures, "\n")
    assert Session.list_programs(s) == {:ok, []}
  end

  test "reasoning is still a valid output of a plain :predict program" do
    s = Session.open!(lm: {:dummy, %{"" => %{"reasoning" => "because"}}})
    assert :ok = Session.create_program(s, "p", signature: "question -> reasoning")
    assert {:ok, %{"reasoning" => "because"}} = Session.execute(s, "p", %{question: "why?"})

    assert :ok =
             Session.create_program(s, "q",
               signature: %{inputs: [:question], outputs: [:reasoning]}
             )

    assert {:ok, %{"reasoning" => "because"}} = Session.execute(s, "q", %{question: "why?"})
  end

  test "a custom module without a signature refuses reserved input names at execute time" do
    s = session()
    :ok = Session.create_program(s, "free", module: {:custom, "Free"})
    assert {:ok, %{"answer" => "ok"}} = Session.execute(s, "free", %{question: "hi"})

    values = %{"config" => %{"temperature" => 0.5}, "lm" => nil, "demos" => []}

    for name <- @base, value = Map.get(values, name, "x") do
      assert {:error, %Error{reason: :invalid_argument, message: m}} =
               Session.execute(s, "free", %{:question => "hi", name => value})

      assert m =~ ~r/\b#{name}\b/, m
    end
  end

  describe "input fields cannot steer DSPy" do
    setup do
      good = start_server("good answer")
      evil = start_evil()
      s = Session.open!(lm: lm(good, "sk-good"))
      {:ok, _} = Session.load_module(s, "wrappers", @wrapper)
      %{good: good, evil: evil, s: s}
    end

    @first_call 120_000

    test "an input named config is refused, and the LM is never redirected", ctx do
      %{good: good, evil: evil, s: s} = ctx
      steer = %{"api_base" => evil.url, "api_key" => "sk-evil", "model" => "openai/test-model"}

      # A custom module that forwards whatever it is given: the control argument is
      # refused before DSPy sees it.
      :ok = Session.create_program(s, "free", module: {:custom, "Free"})

      for {name, value} <- [
            config: steer,
            lm: steer,
            demos: [%{"question" => "x", "answer" => "y"}]
          ] do
        assert {:error, %Error{reason: :invalid_argument, message: m}} =
                 Session.execute(s, "free", %{:question => "hi", name => value},
                   timeout: @first_call
                 )

        assert m =~ ~r/\b#{name}\b/
      end

      assert {:error, %Error{reason: :invalid_signature, message: m}} =
               Session.create_program(s, "qa", signature: "question, config -> answer")

      assert m =~ "config"

      assert {:error, %Error{reason: :invalid_signature}} =
               Session.import_program(
                 s,
                 "qa",
                 Map.put(
                   genuine_export("question, extra -> answer"),
                   "signature",
                   "question, config -> answer"
                 )
               )

      # An unknown input on an ordinary program is refused too.
      :ok = Session.create_program(s, "qa", signature: "question -> answer")

      assert {:error, %Error{reason: :invalid_argument}} =
               Session.execute(s, "qa", %{question: "hi", config: steer}, timeout: @first_call)

      # The session still reaches its own server, with its own key.
      assert {:ok, %{"answer" => "good answer"}} =
               Session.execute(s, "qa", %{question: marker("hi")}, timeout: @first_call)

      assert [request] = chat_requests(good)
      assert request.authorization == "Bearer sk-good"
      assert OpenAIServer.requests(evil) == []
    end
  end
end
