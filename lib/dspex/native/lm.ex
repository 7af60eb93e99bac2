defmodule DSPex.Native.LM do
  @moduledoc false
  # LM specs (`nil`, a model string, `{model, opts}`, `{:dummy, answers}`) and the other
  # session settings, as plain data for the Python side, which builds the `dspy.LM`.

  import DSPex.Native.Args, only: [invalid: 1]

  @doc false
  # The settings `configure/2` changes: only those given. An adapter's name is Python's to
  # check (`:chat`, `:json`, `:xml`, `:two_step`, or nil for DSPy's default).
  def settings(opts) do
    with {:ok, settings} <- lm_setting(opts) do
      case Keyword.fetch(opts, :adapter) do
        {:ok, adapter} when is_atom(adapter) -> {:ok, Map.put(settings, "adapter", adapter)}
        {:ok, other} -> {:error, invalid("adapter must be an atom, got #{inspect(other)}")}
        :error -> {:ok, settings}
      end
    end
  end

  defp lm_setting(opts) do
    case Keyword.fetch(opts, :lm) do
      {:ok, spec} -> with {:ok, lm} <- spec(spec), do: {:ok, %{"lm" => lm}}
      :error -> {:ok, %{}}
    end
  end

  @doc false
  # Never inspect an LM spec in a message: it may hold an API key.
  def spec(nil), do: {:ok, nil}
  def spec(model) when is_binary(model), do: spec({model, []})

  def spec({:dummy, answers}) when is_list(answers) or is_map(answers),
    do: {:ok, %{"kind" => "dummy", "answers" => answers}}

  def spec({model, opts}) when is_binary(model) and is_list(opts) do
    if Keyword.keyword?(opts) do
      {:ok,
       %{
         "kind" => "lm",
         "model" => model,
         "kwargs" => Map.new(opts, fn {k, v} -> {Atom.to_string(k), v} end)
       }}
    else
      {:error, invalid("lm options must be a keyword list (passed on to dspy.LM)")}
    end
  end

  def spec(_other) do
    {:error,
     invalid(
       "lm must be nil, a model string, {model, keyword} or {:dummy, answers} (a list or map of output maps)"
     )}
  end
end
