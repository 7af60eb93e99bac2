defmodule DSPex.Native.SecuritySignaturesTest do
  # Signatures are data, never code. Every hostile signature below carries a payload that
  # creates a sentinel file if anything evaluates it (pydantic evaluates a quoted type inside
  # a generic as a forward reference; DSPy's parser imports unknown names). Each must be
  # refused with :invalid_signature naming the field or type, through create_program and
  # through import_program, and no sentinel may ever appear.
  use ExUnit.Case, async: true

  import DSPex.Native.Test.Security
  alias DSPex.Native.{Error, Session}

  @moduletag :capture_log

  # {label, template, mentions}: in the template $W, $S and $Q are payloads (open(...),
  # os.system with single quotes, os.system with double quotes) that each create this case's
  # sentinel file; the error message must contain one of `mentions` (default: the field).
  @hostile [
    # quoted forward references in every generic form
    {"list[str-ref]", ~S|question -> hostile: list["$W"]|},
    {"List[str-ref]", ~S|question -> hostile: List["$S"]|},
    {"typing.List[str-ref]", ~S|question -> hostile: typing.List["$W"]|},
    {"Optional[str-ref]", ~S|question -> hostile: Optional["$W"]|},
    {"typing.Optional[str-ref]", ~S|question -> hostile: typing.Optional["$S"]|},
    {"dict[str, str-ref]", ~S|question -> hostile: dict[str, "$W"]|},
    {"Dict[str-ref, int]", ~S|question -> hostile: Dict["$S", int]|},
    {"Union[int, str-ref]", ~S|question -> hostile: Union[int, "$W"]|},
    {"tuple[str-ref, int]", ~S|question -> hostile: tuple["$S", int]|},
    {"Tuple[int, str-ref]", ~S|question -> hostile: Tuple[int, "$W"]|},
    {"tuple[str-ref, ...]", ~S|question -> hostile: tuple["$W", ...]|},
    {"int | str-ref", ~S|question -> hostile: int \| "$W"|},
    {"str-ref | None", ~S|question -> hostile: "$S" \| None|},
    {"bare double-quoted type", ~S|question -> hostile: "$W"|},
    {"bare single-quoted type", ~S|question -> hostile: '$Q'|},
    {"triple-quoted ref", ~S|question -> hostile: list["""$W"""]|},
    {"raw-string ref", ~S|question -> hostile: list[r"$W"]|},
    {"u-string ref", ~S|question -> hostile: Optional[u"$S"]|},
    {"implicitly concatenated ref",
     ~S|question -> hostile: list["__imp" "ort__('os').system('touch $P')"]|},
    {"bytes ref", ~S|question -> hostile: list[b"$W"]|},
    # in inputs
    {"input list[str-ref]", ~S|hostile: list["$W"] -> answer|},
    {"input bare quoted type", ~S|hostile: "$S" -> answer|},
    {"input Optional[str-ref]", ~S|hostile: Optional["$W"] -> answer|},
    {"second input dict ref", ~S|question, hostile: dict[str, "$S"] -> answer|},
    {"second output Union ref", ~S|question -> answer, hostile: Union["$W", None]|},
    # nested
    {"nested list/dict/list", ~S|question -> hostile: list[dict[str, list["$W"]]]|},
    {"nested Optional/list/Union", ~S|question -> hostile: Optional[list[Union[int, "$S"]]]|},
    {"nested deep list", ~S|question -> hostile: list[list[list[list[list["$W"]]]]]|},
    {"nested in input", ~S|hostile: dict[str, Optional[list["$W"]]] -> answer|},
    {"ref inside Literal generic", ~S|question -> hostile: list[Literal["a"] \| "$W"]|},
    # Annotated
    {"Annotated[str-ref, ...]", ~S|question -> hostile: Annotated["$W", 1]|},
    {"Annotated metadata call", ~S|question -> hostile: Annotated[str, $W]|},
    {"typing.Annotated ref", ~S|question -> hostile: typing.Annotated[int, "$S"]|},
    # Literal with code
    {"Literal[__import__(...)]", ~S|question -> hostile: Literal[$Q]|},
    {"Literal with a call", ~S|question -> hostile: Literal["ok", $W]|},
    {"typing.Literal call", ~S|question -> hostile: typing.Literal[$S]|},
    {"list[Literal[call]]", ~S|question -> hostile: list[Literal[$W]]|},
    # unicode look-alikes (Python folds identifiers with NFKC)
    {"fullwidth eval", ~S|question -> hostile: ｅｖａｌ("$W")|},
    {"fullwidth eval in generic", ~S|question -> hostile: list[ｅｖａｌ("$S")]|},
    {"fullwidth list[str-ref]", ~S|question -> hostile: ｌｉｓｔ["$W"]|},
    {"fullwidth __import__", ~S|question -> hostile: __ｉｍｐｏｒｔ__('os').system('touch $P')|},
    {"math-bold eval", ~S|question -> hostile: 𝐞𝐯𝐚𝐥("$W")|},
    {"cyrillic look-alike list", ~S|question -> hostile: lіst["$W"]|},
    {"fullwidth field name", ~S|question, ｃｏｎｆｉｇ -> answer|, ["ｃｏｎｆｉｇ", "config"]},
    {"fullwidth field name demos", ~S|question -> ｄｅｍｏｓ|, ["ｄｅｍｏｓ", "demos"]},
    {"cyrillic field name", ~S|question, cоnfig -> answer|, ["cоnfig", "config"]},
    # attribute chains
    {"dspy.__class__", ~S|question -> hostile: dspy.__class__|},
    {"typing.sys", ~S|question -> hostile: typing.sys|},
    {"typing.sys.modules", ~S|question -> hostile: typing.sys.modules|},
    {"dspy.utils.os", ~S|question -> hostile: dspy.utils.os|},
    {"str.__mro__", ~S|question -> hostile: str.__mro__|},
    {"dspy.Image.__init__.__globals__", ~S|question -> hostile: dspy.Image.__init__.__globals__|},
    {"list.__subclasses__ call", ~S|question -> hostile: list[str.__subclasses__()]|},
    {"typing.ForwardRef", ~S|question -> hostile: typing.ForwardRef("$W")|},
    # dunder names
    {"__import__", ~S|question -> hostile: __import__|},
    {"__builtins__", ~S|question -> hostile: __builtins__|},
    {"__builtins__ input", ~S|hostile: __builtins__ -> answer|},
    {"__import__ call", ~S|question -> hostile: $S|},
    {"dunder field name", ~S|question -> __class__|, ["__class__"]},
    {"dunder input name", ~S|__init__ -> answer|, ["__init__"]},
    # calls, lambdas, walrus, f-strings, eval/exec/os.system
    {"list[print(1)]", ~S|question -> hostile: list[print(1)]|},
    {"list[open(...)]", ~S|question -> hostile: list[$W]|},
    {"lambda", ~S|question -> hostile: (lambda: $W)()|},
    {"lambda in generic", ~S|question -> hostile: list[(lambda: $S)()]|},
    {"lambda default", ~S|question -> hostile: lambda x=$W: x|},
    {"walrus", ~S|question -> hostile: list[(y := $W)]|},
    {"f-string", ~S|question -> hostile: list[f"{$W}"]|},
    {"eval", ~S|question -> hostile: eval("$W")|},
    {"eval in generic", ~S|question -> hostile: Optional[eval("$S")]|},
    {"exec", ~S|question -> hostile: exec("$W")|},
    {"os.system", ~S|question -> hostile: os.system('touch $P')|},
    {"getattr chain", ~S|question -> hostile: getattr(__builtins__, 'eval')("$W")|},
    {"conditional", ~S|question -> hostile: list[str] if $W else int|},
    {"comprehension", ~S|question -> hostile: [y for y in $W]|},
    {"set display", ~S|question -> hostile: {$W}|},
    {"list display", ~S|question -> hostile: [$S]|},
    {"arithmetic", ~S|question -> hostile: int + $W|},
    # dspy.Code with a language that is not a plain name
    {"dspy.Code ref language", ~S|question -> hostile: dspy.Code["$W"]|},
    {"dspy.Code breakout language", ~S|question -> hostile: dspy.Code["py'); $W; ('"]|},
    {"dspy.Code call language", ~S|question -> hostile: dspy.Code[$W]|},
    {"dspy.Code spaced language", ~S|question -> hostile: dspy.Code["py thon"]|},
    # starred args, defaults, **kw, *args, keyword-only and positional-only markers
    {"default value", ~S|question, hostile=1 -> answer|, ["hostile", "inputs"]},
    {"default code", ~S|question, hostile=$W -> answer|, ["hostile", "inputs"]},
    {"typed default", ~S|question -> hostile: int = $W|, ["hostile", "outputs"]},
    {"**kw", ~S|question, **hostile -> answer|, ["hostile", "inputs"]},
    {"*args", ~S|question, *hostile -> answer|, ["hostile", "inputs"]},
    {"*args typed", ~S|*hostile: list["$W"] -> answer|, ["hostile", "inputs"]},
    {"keyword-only marker", ~S|question, *, hostile -> answer|, ["hostile", "inputs", "*"]},
    {"positional-only marker", ~S|question, /, hostile -> answer|, ["hostile", "inputs", "/"]},
    # breaking out of DSPy's "def f(...): pass" wrapper
    {"wrapper breakout", "question -> hostile): pass\n$S\ndef g(x: int", ["hostile", "outputs"]},
    {"decorator breakout", "question -> x): pass\n@$W\ndef g(hostile", ["hostile", "outputs"]}
  ]

  defp expand(template, dir, n) do
    path = Path.join(dir, "s#{n}")

    template
    |> String.replace("$W", open_payload(path))
    |> String.replace("$S", system_payload(path))
    |> String.replace("$Q", dq_payload(path))
    |> String.replace("$P", path)
  end

  defp cases(dir) do
    @hostile
    |> Enum.with_index()
    |> Enum.map(fn
      {{label, template}, n} -> {n, label, expand(template, dir, n), ["hostile"]}
      {{label, template, mentions}, n} -> {n, label, expand(template, dir, n), mentions}
    end)
  end

  # What went wrong with one answer, if anything.
  defp problems(result, mentions) do
    case result do
      {:error, %Error{reason: :invalid_signature, message: m}} ->
        if Enum.any?(mentions, &String.contains?(m, &1)),
          do: [],
          else: ["message names none of #{inspect(mentions)}: #{m}"]

      other ->
        ["expected :invalid_signature, got #{inspect(other, limit: 5, printable_limit: 300)}"]
    end
  end

  defp report(failures) do
    if failures != [] do
      flunk("#{length(failures)} hostile signature(s) misbehaved:\n" <> Enum.join(failures, "\n"))
    end
  end

  test "the battery has at least 60 hostile signatures, each a distinct case" do
    cases = cases("/nonexistent")
    assert length(cases) >= 60
    assert cases |> Enum.map(&elem(&1, 2)) |> Enum.uniq() |> length() == length(cases)
  end

  test "create_program refuses every hostile signature and runs none of them" do
    dir = sentinel_dir()
    s = Session.open!(lm: {:dummy, %{"" => %{"answer" => "x"}}})

    failures =
      for {n, label, text, mentions} <- cases(dir),
          problem <-
            problems(Session.create_program(s, "p#{n}", signature: text), mentions) ++
              if(File.exists?(Path.join(dir, "s#{n}")),
                do: ["CODE RAN (sentinel created)"],
                else: []
              ),
          do: "  [#{n}] #{label} #{inspect(text)}: #{problem}"

    report(failures)
    assert listing(dir) == [], "sentinels created: #{inspect(listing(dir))}"
    assert Session.list_programs(s) == {:ok, []}
  end

  test "import_program refuses every hostile signature in a genuine export and runs none" do
    dir = sentinel_dir()
    s = Session.open!(lm: {:dummy, %{"" => %{"answer" => "x"}}})
    exports = %{}

    {failures, _} =
      Enum.flat_map_reduce(cases(dir), exports, fn {n, label, text, mentions}, exports ->
        # A genuine export with as many fields as the hostile text, so only the signature is wrong.
        counts = field_counts(text)

        exports =
          Map.put_new_lazy(exports, counts, fn -> genuine_export(plain_signature(counts)) end)

        exported = Map.put(exports[counts], "signature", text)
        result = Session.import_program(s, "p#{n}", exported)

        ran =
          if File.exists?(Path.join(dir, "s#{n}")), do: ["CODE RAN (sentinel created)"], else: []

        {for(
           p <- problems(result, mentions) ++ ran,
           do: "  [#{n}] #{label} #{inspect(text)}: #{p}"
         ), exports}
      end)

    report(failures)
    assert listing(dir) == [], "sentinels created: #{inspect(listing(dir))}"
    assert Session.list_programs(s) == {:ok, []}
  end

  describe "the structured form" do
    # Hostile things the structured form can express: refused, or accepted as inert text.
    defp structured_cases(dir) do
      w = open_payload(Path.join(dir, "structured"))

      [
        %{inputs: [{"__class__", nil}], outputs: [:answer]},
        %{inputs: [:question], outputs: [{"__init__", nil}]},
        %{inputs: [{"a: eval(\"#{w}\")", nil}], outputs: [:answer]},
        %{inputs: [:question], outputs: [{~s|a: list["#{w}"]|, nil}]},
        %{inputs: [{"q\n#{w}", nil}], outputs: [:answer]},
        %{inputs: ["ｃｏｎｆｉｇ"], outputs: [:answer]},
        %{inputs: [question: w], outputs: [answer: "{#{w}} ${answer} {{#{w}}}"]},
        %{inputs: [:question], outputs: [:answer], instructions: "#{w} {#{w}} %(x)s ${#{w}}"},
        %{inputs: [question: [type: {:literal, [w, "ok"]}]], outputs: [:answer]}
      ]
    end

    test "create_program: hostile names are refused, code in text stays text" do
      dir = sentinel_dir()
      s = Session.open!(lm: {:dummy, %{"" => %{"answer" => "inert"}}})

      for {spec, n} <- Enum.with_index(structured_cases(dir)) do
        case Session.create_program(s, "p#{n}", signature: spec) do
          {:error, %Error{reason: :invalid_signature}} ->
            :ok

          :ok ->
            {:ok, [input]} = input_names(s, "p#{n}")
            assert {:ok, %{"answer" => "inert"}} = Session.execute(s, "p#{n}", %{input => "ok"})

          other ->
            flunk("#{inspect(spec)}: expected :ok or :invalid_signature, got #{inspect(other)}")
        end

        assert listing(dir) == [], "#{inspect(spec)} ran code"
      end

      # Descriptions and instructions with code in them are plain text: accepted, verbatim.
      text = "Answer. #{open_payload(Path.join(dir, "structured"))} {x} ${y}"

      :ok =
        Session.create_program(s, "instr",
          signature: %{inputs: [question: text], outputs: [answer: text], instructions: text}
        )

      assert {:ok, %{"answer" => "inert"}} = Session.execute(s, "instr", %{question: "?"})
      assert {:ok, [call]} = Session.history(s, 1)
      assert Enum.any?(call.messages, &String.contains?(&1["content"], text))
      assert listing(dir) == []
    end

    test "import_program: hostile names and types in an exported structure run nothing" do
      dir = sentinel_dir()
      w = open_payload(Path.join(dir, "structured"))
      s = Session.open!(lm: {:dummy, %{"" => %{"answer" => "inert"}}})
      base = genuine_export(%{inputs: [question: "q"], outputs: [answer: "a"]})

      assert %{"inputs" => [["question", "q"]], "outputs" => [["answer", "a"]]} =
               base["signature"]

      tampered = [
        {"outputs", [["answer", nil, ~s|list["#{w}"]|]]},
        {"outputs", [["answer", nil, ["list", ~s|"#{w}"|]]]},
        {"outputs", [["answer", nil, ["list", w]]]},
        {"outputs", [["answer", nil, "eval"]]},
        {"outputs", [["answer", nil, ["literal", [w]]]]},
        {"outputs", [["answer", nil, ["dict", "str", w]]]},
        {"inputs", [["__class__", nil]]},
        {"inputs", [["a: eval(\"#{w}\")", nil]]},
        {"inputs", [[~s|q: list["#{w}"]|, nil]]},
        {"inputs", [["question", w, w]]},
        {"instructions", 42},
        {"inputs", "question: #{w}"}
      ]

      for {{key, value}, n} <- Enum.with_index(tampered) do
        exported = put_in(base, ["signature", key], value)

        case Session.import_program(s, "p#{n}", exported) do
          {:error, %Error{reason: reason}}
          when reason in [:invalid_signature, :invalid_argument] ->
            :ok

          :ok ->
            # Accepted (as inert data): running it must not run the payload either.
            {:ok, [input]} = input_names(s, "p#{n}")
            _ = Session.execute(s, "p#{n}", %{input => "ok"})

          other ->
            flunk("#{key} => #{inspect(value)}: got #{inspect(other)}")
        end

        assert listing(dir) == [], "#{key} => #{inspect(value)} ran code"
      end
    end
  end

  # The input names of an installed program, from its export.
  defp input_names(s, id) do
    {:ok, %{"signature" => %{"inputs" => inputs}}} = Session.export_program(s, id)
    {:ok, Enum.map(inputs, &hd/1)}
  end

  describe "benign signatures" do
    @benign [
      {"question -> answer", %{question: "q?"}, %{"answer" => "Paris"}, %{"answer" => "Paris"}},
      {"q: list[str] -> a: dict[str, int]", %{q: ["u", "v"]}, %{"a" => %{"x" => 1, "y" => 2}},
       %{"a" => %{"x" => 1, "y" => 2}}},
      {"q -> a: Literal['yes', 'no']", %{q: "?"}, %{"a" => "yes"}, %{"a" => "yes"}},
      {"q -> a: Optional[int]", %{q: "?"}, %{"a" => 7}, %{"a" => 7}},
      {"q -> a: int | None", %{q: "?"}, %{"a" => 41}, %{"a" => 41}},
      {"q -> a: list[int]", %{q: "?"}, %{"a" => [1, 2]}, %{"a" => [1, 2]}},
      {"q -> a: float, ok: bool", %{q: "?"}, %{"a" => 1.5, "ok" => true},
       %{"a" => 1.5, "ok" => true}},
      {"q -> a: dspy.Code['python']", %{q: "?"}, %{"a" => "print(1)"}, nil}
    ]

    test "still work through create_program and import_program, values typed" do
      for {sig, inputs, answer, expected} <- @benign do
        s = Session.open!(lm: {:dummy, %{"" => answer}})
        assert :ok = Session.create_program(s, "p", signature: sig), sig
        assert {:ok, result} = Session.execute(s, "p", inputs), sig
        if expected, do: assert(result == expected, "#{sig}: #{inspect(result)}")

        {:ok, exported} = Session.export_program(s, "p")
        t = Session.open!(lm: {:dummy, %{"" => answer}})
        assert :ok = Session.import_program(t, "p", exported), sig
        assert {:ok, ^result} = Session.execute(t, "p", inputs)
      end
    end

    test "Literal values that look like code are accepted as plain values, never run" do
      dir = sentinel_dir()
      code = system_payload(Path.join(dir, "literal"))
      sig = ~s|q -> a: Literal["#{code}", 'ok']|
      s = Session.open!(lm: {:dummy, %{"" => %{"a" => code}}})
      assert :ok = Session.create_program(s, "p", signature: sig)
      assert {:ok, %{"a" => ^code}} = Session.execute(s, "p", %{q: "?"})

      {:ok, exported} = Session.export_program(s, "p")
      assert :ok = Session.import_program(s, "copy", exported)
      assert {:ok, %{"a" => ^code}} = Session.execute(s, "copy", %{q: "?"})
      assert listing(dir) == []
    end
  end
end
