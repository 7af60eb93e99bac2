defmodule DSPex.Native.SecurityExportsTest do
  # An export comes back from outside (a file, a database, another tenant): it is untrusted.
  # DSPy's load_state sets every key it finds on a predictor (`config` redirects the LM,
  # `lm` builds a new one), so import_program must check the whole map against the format
  # export_program writes, refuse anything else with :invalid_argument naming the key, and
  # install nothing.
  use ExUnit.Case, async: true

  import DSPex.Native.Test.Security
  import ExUnit.CaptureIO, only: [with_io: 1, with_io: 2]
  alias DSPex.Native.{Error, Session}
  alias DSPex.Native.Test.OpenAIServer
  alias DSPex.Native.Test.OpenAIServer.JSON

  @moduletag :capture_log

  @trainset [
    %{question: "2+2?", answer: "4"},
    %{question: "3+3?", answer: "6"},
    %{question: "capital of France?", answer: "Paris"}
  ]

  # Where a predictor's own state sits in an export of each module kind.
  defp predictor(:predict), do: ["state"]
  defp predictor(:chain_of_thought), do: ["state", "predict"]

  defp compiled_export(kind) do
    exported = genuine_export("question -> answer", kind, @trainset)
    assert length(get_in(exported, predictor(kind) ++ ["demos"])) == 3
    exported
  end

  defp nested(0), do: "bottom"
  defp nested(n), do: [nested(n - 1)]

  # {what, tamper function, substring the error message must contain}
  defp tampers(kind, evil_url) do
    p = predictor(kind)
    evil_lm = %{"model" => "openai/x", "api_base" => evil_url, "api_key" => "sk-evil"}
    put = fn path, value -> &put_in(&1, path, value) end
    update = fn path, fun -> &update_in(&1, path, fun) end

    [
      {"extra top-level key", put.(["zz_extra"], 1), "zz_extra"},
      {"config in the predictor state", put.(p ++ ["config"], %{"api_base" => evil_url}),
       "config"},
      {"lm in the predictor state", put.(p ++ ["lm"], evil_lm), "lm"},
      {"lm as a model string", put.(p ++ ["lm"], "openai/x"), "lm"},
      {"callbacks in the predictor state", put.(p ++ ["callbacks"], []), "callbacks"},
      {"fields in the predictor state", put.(p ++ ["fields"], %{}), "fields"},
      {"unknown key in the predictor state", put.(p ++ ["zz_unknown"], 1), "zz_unknown"},
      {"demos not a list", put.(p ++ ["demos"], "not a list"), "demos"},
      {"demos a map", put.(p ++ ["demos"], %{"question" => "x"}), "demos"},
      {"a demo that is not a map", update.(p ++ ["demos"], &["a string" | &1]), "demos"},
      {"a demo with a field not in the signature",
       update.(p ++ ["demos"], fn [d | rest] -> [Map.put(d, "sneaky_field", "x") | rest] end),
       "sneaky_field"},
      {"a deeply nested demo value",
       update.(p ++ ["demos"], fn [d | rest] -> [Map.put(d, "answer", nested(300)) | rest] end),
       "demos"},
      {"a huge demo value",
       update.(p ++ ["demos"], fn [d | rest] ->
         [Map.put(d, "answer", List.duplicate("0123456789", 1_100_000)) | rest]
       end), "demos"},
      {"10,000 demos", update.(p ++ ["demos"], fn [d | _] -> List.duplicate(d, 10_000) end),
       "demos"},
      {"traces not a list", put.(p ++ ["traces"], "x"), "traces"},
      {"train not a list", put.(p ++ ["train"], %{"x" => 1}), "train"},
      {"instructions not a string", put.(p ++ ["signature", "instructions"], 42), "instructions"},
      {"5 MB of instructions",
       put.(p ++ ["signature", "instructions"], String.duplicate("a", 5_000_000)),
       "instructions"},
      {"signature state with one field too few", update.(p ++ ["signature", "fields"], &tl/1),
       "fields"},
      {"a signature with more fields than the state",
       put.(["signature"], "question, context -> answer"), "fields"},
      {"signature state with an extra key", put.(p ++ ["signature", "zz_sig"], 1), "zz_sig"},
      {"a field prefix that is not a string",
       update.(p ++ ["signature", "fields"], fn [f | rest] -> [Map.put(f, "prefix", 1) | rest] end),
       "prefix"},
      {"wrong format", put.(["format"], "dspex_native/999"), "format"},
      {"no format", &Map.delete(&1, "format"), "format"},
      {"module react", put.(["module"], "react"), "module"},
      {"unknown module", put.(["module"], "evil_module"), "module"},
      {"state not a map", put.(["state"], "x"), "state"}
    ] ++
      if kind == :chain_of_thought,
        do: [
          {"state keyed by a predictor that does not exist",
           fn e -> update_in(e, ["state"], &%{"ghost" => &1["predict"]}) end, "ghost"},
          {"an extra predictor", fn e -> put_in(e, ["state", "ghost"], e["state"]["predict"]) end,
           "ghost"}
        ],
        else: []
  end

  for kind <- [:predict, :chain_of_thought] do
    test "tampered #{kind} exports are refused, naming the key; nothing is installed" do
      kind = unquote(kind)
      good = start_server("good answer")
      evil = start_evil()
      s = Session.open!(lm: lm(good, "sk-good"))
      :ok = Session.create_program(s, "existing", signature: "question -> answer")
      exported = compiled_export(kind)

      failures =
        for {what, tamper, key} <- tampers(kind, evil.url),
            problem <- check(Session.import_program(s, what, tamper.(exported)), key),
            do: "  #{what}: #{problem}"

      assert failures == [], "tampered exports misbehaved:\n" <> Enum.join(failures, "\n")
      assert Session.list_programs(s) == {:ok, ["existing"]}

      # The session's LM was not redirected: its program still reaches its own server.
      assert {:ok, %{"answer" => "good answer"}} =
               Session.execute(s, "existing", %{question: marker("q")}, timeout: 120_000)

      assert [%{authorization: "Bearer sk-good"}] = chat_requests(good)

      # The untampered export still imports and executes.
      assert :ok = Session.import_program(s, "genuine", exported)

      assert {:ok, %{"answer" => "good answer"}} =
               Session.execute(s, "genuine", %{question: marker("q")}, timeout: 120_000)

      assert OpenAIServer.requests(evil) == []
    end
  end

  defp check(result, key) do
    case result do
      {:error, %Error{reason: :invalid_argument, message: m}} ->
        if m =~ ~r/\b#{Regex.escape(key)}\b/, do: [], else: ["message does not name #{key}: #{m}"]

      other ->
        ["expected :invalid_argument, got #{inspect(other, limit: 5, printable_limit: 200)}"]
    end
  end

  test "an export that is not a map is refused" do
    s = Session.open!()
    assert {:error, %Error{reason: :invalid_argument}} = Session.import_program(s, "p", "x")
    assert {:error, %Error{reason: :invalid_argument}} = Session.import_program(s, "p", %{})
    assert Session.list_programs(s) == {:ok, []}
  end

  for kind <- [:predict, :chain_of_thought] do
    test "the honest #{kind} round trip through JSON keeps the demos" do
      kind = unquote(kind)
      exported = compiled_export(kind)
      decoded = exported |> JSON.encode!() |> JSON.decode!()

      s = Session.open!(lm: {:dummy, %{"" => %{"reasoning" => "r", "answer" => "imported"}}})
      assert :ok = Session.import_program(s, "p", decoded)
      assert {:ok, %{"answer" => "imported"}} = Session.execute(s, "p", %{question: "5+5?"})

      # The demos reached the prompt, and a second export carries them unchanged.
      {:ok, [call]} = Session.history(s, 1)
      prompt = Enum.map_join(call.messages, "\n", & &1["content"])
      for %{question: q, answer: a} <- @trainset, do: assert(prompt =~ q and prompt =~ a)

      {:ok, again} = Session.export_program(s, "p")

      assert get_in(again, predictor(kind) ++ ["demos"]) ==
               get_in(decoded, predictor(kind) ++ ["demos"])
    end
  end

  test "a bootstrapped export (demos marked augmented) round-trips" do
    s = Session.open!(lm: {:dummy, %{"" => %{"answer" => "4"}}})
    :ok = Session.create_program(s, "p", signature: "question -> answer")

    # DSPy prints a progress bar while bootstrapping: keep it out of the test output.
    {{{:ok, %{demos: demos}}, _stdout}, _stderr} =
      with_io(:stderr, fn ->
        with_io(fn ->
          Session.compile(s, "p", @trainset,
            optimizer: :bootstrap_few_shot,
            metric: {:exact_match, :answer},
            max_labeled_demos: 0
          )
        end)
      end)

    assert demos >= 1
    {:ok, exported} = Session.export_program(s, "p")
    t = Session.open!(lm: {:dummy, %{"" => %{"answer" => "4"}}})
    assert :ok = Session.import_program(t, "p", exported |> JSON.encode!() |> JSON.decode!())
    assert {:ok, %{"answer" => "4"}} = Session.execute(t, "p", %{question: "2+2?"})
    {:ok, again} = Session.export_program(t, "p")
    assert again["state"]["demos"] == exported["state"]["demos"]
  end
end
