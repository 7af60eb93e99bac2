defmodule DSPex.Native.Signature do
  @moduledoc """
  Program signatures, as `DSPex.Native.Session.create_program/3` takes them.

  A DSPy string signature, `"question -> answer"` or `"context, question -> answer: int"`,
  or a structure:

      %{inputs: [question: "what to answer"], outputs: [answer: "a short answer"],
        instructions: "Answer briefly."}

  (a map or keyword; descriptions are optional: `inputs: [:question]`). Signatures are data,
  never code: a string signature is parsed without evaluating anything, and its types may
  only be builtins (`str`, `int`, `float`, `bool`, `list[...]`, `dict[...]`, `tuple[...]`,
  `X | None`), `typing` (`Any`, `List`, `Dict`, `Tuple`, `Optional`, `Union`,
  `Literal[...]`) and DSPy's types (`dspy.Image`, `dspy.History`, `dspy.Tool`,
  `dspy.ToolCalls`, `dspy.Code["python"]`, `dspy.Audio`). Anything else, such as a quoted
  type, is `:invalid_signature`.

  Field names that DSPy's modules take as control arguments are reserved and refused with
  `:invalid_signature`: `signature`, `demos`, `config`, `lm`, `prediction`, `new_signature`
  and `completed` everywhere; `reasoning` in `:chain_of_thought`; `reasoning`, `max_iters`,
  `trajectory`, `next_thought`, `next_tool_name` and `next_tool_args` in `:react`.


  Elixir checks the shape of these terms; what a type or a field name means to DSPy
  (allowed types, reserved names) is the Python side's rule.
  """

  # A program's module kind and signature, from the shapes `create_program/3` takes to the
  # plain data the Python side builds DSPy objects from. Only shapes are checked here: what
  # a type or field name means to DSPy (allowed types, reserved names) is Python's rule.

  alias DSPex.Native.Error

  import DSPex.Native.Args, only: [invalid: 1]

  @doc false
  # Which kinds exist is Python's rule (it names them when refusing one).
  def module_kind(kind) when is_atom(kind) and kind not in [nil, true, false],
    do: {:ok, Atom.to_string(kind)}

  def module_kind({:custom, class}) when is_binary(class) or is_atom(class),
    do: {:ok, ["custom", to_string(class)]}

  def module_kind(other) do
    {:error,
     invalid(
       "module must be :predict, :chain_of_thought, :react or {:custom, \"ClassName\"}, got #{inspect(other)}"
     )}
  end

  @doc false
  # A custom module may build its own predictors: its signature is optional.
  def program_signature(nil, ["custom", _]), do: {:ok, nil}
  def program_signature(sig, _module), do: signature(sig)

  defp signature(sig) when is_binary(sig), do: {:ok, sig}

  defp signature(sig) when is_list(sig) do
    if Keyword.keyword?(sig) and sig != [],
      do: signature(Map.new(sig)),
      else: {:error, invalid_signature("a signature must be a string, a map or a keyword list")}
  end

  defp signature(%{} = sig) when not is_struct(sig) do
    with {:ok, inputs} <- fields(sig, :inputs),
         {:ok, outputs} <- fields(sig, :outputs),
         {:ok, instructions} <- instructions(Map.get(sig, :instructions)) do
      case Map.keys(sig) -- [:inputs, :outputs, :instructions] do
        [] ->
          {:ok, %{"inputs" => inputs, "outputs" => outputs, "instructions" => instructions}}

        extra ->
          {:error, invalid_signature("unknown signature keys #{inspect(extra)}")}
      end
    end
  end

  defp signature(nil), do: {:error, invalid_signature("the :signature option is required")}

  defp signature(other),
    do:
      {:error, invalid_signature("a signature must be a string or a map, got #{inspect(other)}")}

  defp fields(sig, key) do
    case Map.get(sig, key) do
      list when is_list(list) and list != [] ->
        list
        |> Enum.reduce_while([], fn field, acc ->
          case field(field) do
            {:ok, pair} ->
              {:cont, [pair | acc]}

            :error ->
              {:halt,
               {:error,
                invalid_signature(
                  "#{key}: cannot read field #{inspect(field)}; use name or {name, \"description\"}"
                )}}
          end
        end)
        |> case do
          {:error, _} = error -> error
          pairs -> {:ok, Enum.reverse(pairs)}
        end

      _ ->
        {:error,
         invalid_signature("a structured signature needs a non-empty #{inspect(key)} list")}
    end
  end

  defp field(name) when is_atom(name) and not is_nil(name), do: {:ok, [Atom.to_string(name), nil]}
  defp field(name) when is_binary(name), do: {:ok, [name, nil]}

  defp field({name, desc})
       when (is_atom(name) or is_binary(name)) and (is_binary(desc) or is_nil(desc)),
       do: {:ok, [to_string(name), desc]}

  defp field({name, opts}) when (is_atom(name) or is_binary(name)) and is_list(opts) do
    with true <- Keyword.keyword?(opts) and Keyword.keys(opts) -- [:type, :desc] == [],
         desc when is_binary(desc) or is_nil(desc) <- Keyword.get(opts, :desc),
         {:ok, type} <- field_type(Keyword.get(opts, :type)) do
      {:ok, [to_string(name), desc, type]}
    else
      _ -> :error
    end
  end

  defp field({name, type}) when is_atom(name) or is_binary(name) do
    with {:ok, type} <- field_type(type), do: {:ok, [to_string(name), nil, type]}
  end

  defp field(_), do: :error

  @doc false
  # Field types become Python annotations (str, int, float, bool, dict, list[...],
  # Literal[...]); outputs come back as the matching Elixir terms.
  defp field_type(nil), do: {:ok, nil}

  # Which scalar types exist is Python's rule (it names them when refusing one).
  defp field_type(t) when is_atom(t) and t not in [true, false], do: {:ok, Atom.to_string(t)}

  defp field_type({:list, inner}) do
    with {:ok, inner} when inner != nil <- field_type(inner), do: {:ok, ["list", inner]}
  end

  defp field_type({:literal, [_ | _] = values}) do
    if Enum.all?(values, &(is_binary(&1) or is_atom(&1) or is_number(&1))),
      do: {:ok, ["literal", Enum.map(values, &literal/1)]},
      else: :error
  end

  defp field_type(_), do: :error

  defp literal(v) when is_atom(v) and not is_boolean(v) and not is_nil(v), do: Atom.to_string(v)
  defp literal(v), do: v

  defp instructions(nil), do: {:ok, nil}
  defp instructions(text) when is_binary(text), do: {:ok, text}
  defp instructions(_), do: {:error, invalid_signature("instructions must be a string")}

  defp invalid_signature(message), do: Error.new(:invalid_signature, message)
end
