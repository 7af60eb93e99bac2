defmodule DSPex.Native.Tool do
  @moduledoc """
  Elixir functions that Python calls back: ReAct tools.

  `module: :react` is DSPy's ReAct agent with Elixir tools. `:tools` is a list of
  `%{name: "weather", description: "...", args: [city: :string], fun: fn args -> ... end}`
  (argument types as for signature fields, or `[type: t, desc: "..."]`); `fun` gets a map
  of the arguments the LM chose (string keys) and returns any term with a Python form. When
  DSPy calls a tool, the function runs in a process of its own, tied to the call, while the
  Python worker waits without the GIL; an exception, exit or a `:tool_timeout`
  (milliseconds, default 30 000) reaches DSPy as a tool error, which ReAct shows the LM,
  and the process is killed once nobody waits for it. `:max_iters` (default 10) passes
  through. A tool is its own function wherever its name is used; it is freed with its program.
  """

  # Elixir functions Python calls back: ReAct tools (name, description, arguments as JSON
  # schema, function) and the options that go with them.

  alias DSPex.Native.{Job, NIF}

  import DSPex.Native.Args, only: [integers: 2, invalid: 1, text: 2]

  @doc false
  # A function for Python to call back: the handle is its key, and Python keeps it inside
  # the program (or compile) that uses it, so it goes when that goes. If the NIF is not
  # loaded the call that would carry it fails with :not_started anyway.
  def fun_handle(fun) do
    case Job.safe(fn -> NIF.callback_handle(fun) end) do
      {:error, _} -> nil
      handle -> handle
    end
  end

  @react_options [:tools, :max_iters, :tool_timeout]

  @doc false
  def react_options, do: @react_options

  @doc false
  # The arguments `module: :react` adds to create_program: tools always, the rest only when
  # given (their defaults are Python's). Times cross the boundary in milliseconds.
  def react_args("react", opts) do
    with {:ok, tools} <- tools(Keyword.get(opts, :tools)),
         {:ok, numbers} <- integers(Keyword.take(opts, [:max_iters, :tool_timeout]), 1) do
      {:ok, Map.put(numbers, "tools", Enum.map(tools, & &1.spec))}
    end
  end

  def react_args(_module, opts) do
    case Keyword.take(opts, @react_options) do
      [] -> {:ok, %{}}
      given -> {:error, invalid("#{inspect(Keyword.keys(given))} only apply to module: :react")}
    end
  end

  @doc false
  # Input values that are tools (`%{name: ..., fun: ...}`, or lists of them) as the specs the
  # Python side builds `dspy.Tool` inputs from; other values as they are.
  def inputs(inputs) do
    Enum.reduce_while(inputs, {:ok, %{}}, fn {key, value}, {:ok, acc} ->
      case input(value) do
        {:ok, value} -> {:cont, {:ok, Map.put(acc, key, value)}}
        error -> {:halt, error}
      end
    end)
  end

  defp input(%{fun: fun} = tool) when is_function(fun),
    do: with({:ok, t} <- tool(tool), do: {:ok, t.spec})

  defp input([%{fun: _} | _] = list) do
    if DSPex.Native.Args.proper_list?(list), do: input_list(list), else: {:ok, list}
  end

  defp input(value), do: {:ok, value}

  defp input_list(list) do
    Enum.reduce_while(list, {:ok, []}, fn tool, {:ok, acc} ->
      case input(tool) do
        {:ok, spec} -> {:cont, {:ok, acc ++ [spec]}}
        error -> {:halt, error}
      end
    end)
  end

  defp tools(list) when is_list(list) and list != [] do
    Enum.reduce_while(list, {:ok, []}, fn tool, {:ok, acc} ->
      case tool(tool) do
        {:ok, t} -> {:cont, {:ok, acc ++ [t]}}
        {:error, _} = error -> {:halt, error}
      end
    end)
  end

  defp tools(_),
    do: {:error, invalid("module: :react needs tools: a non-empty list of tools")}

  defp tool(tool) when is_list(tool), do: tool(Map.new(tool))

  defp tool(%{name: name, fun: fun} = tool) when is_function(fun, 1) do
    with :ok <- text(to_string(name), "tool name"),
         {:ok, args} <- tool_args(Map.get(tool, :args, %{})) do
      name = to_string(name)

      {:ok,
       %{
         spec: %{
           "name" => name,
           "description" => Map.get(tool, :description, ""),
           "args" => args,
           "key" => fun_handle(fun)
         }
       }}
    end
  end

  defp tool(other) do
    {:error,
     invalid(
       "a tool is %{name: \"...\", description: \"...\", args: [arg: :type], fun: fn args -> ... end}" <>
         " (fun takes one map); got #{inspect(other)}"
     )}
  end

  @doc false
  # Tool arguments as JSON schema, which is what DSPy shows the LM.
  defp tool_args(args) when is_map(args) or is_list(args) do
    Enum.reduce_while(args, {:ok, %{}}, fn
      {name, spec}, {:ok, acc} when is_atom(name) or is_binary(name) ->
        {type, desc} =
          case spec do
            opts when is_list(opts) ->
              {Keyword.get(opts, :type, :string), Keyword.get(opts, :desc)}

            type ->
              {type, nil}
          end

        case json_schema(type) do
          {:ok, schema} ->
            schema = if desc, do: Map.put(schema, "description", desc), else: schema
            {:cont, {:ok, Map.put(acc, to_string(name), schema)}}

          :error ->
            {:halt,
             {:error, invalid("tool argument #{name} has an unknown type #{inspect(type)}")}}
        end

      other, _ ->
        {:halt, {:error, invalid("cannot read tool argument #{inspect(other)}")}}
    end)
  end

  defp tool_args(other),
    do: {:error, invalid("tool args must be a keyword list or map, got #{inspect(other)}")}

  defp json_schema(:string), do: {:ok, %{"type" => "string"}}
  defp json_schema(:integer), do: {:ok, %{"type" => "integer"}}
  defp json_schema(:float), do: {:ok, %{"type" => "number"}}
  defp json_schema(:boolean), do: {:ok, %{"type" => "boolean"}}
  defp json_schema(:map), do: {:ok, %{"type" => "object"}}

  defp json_schema({:list, inner}) do
    with {:ok, items} <- json_schema(inner), do: {:ok, %{"type" => "array", "items" => items}}
  end

  defp json_schema(_), do: :error
end
