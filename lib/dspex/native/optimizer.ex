defmodule DSPex.Native.Optimizer do
  @moduledoc """
  The optimizers of `DSPex.Native.Session.compile/4` and their options.

  Options:

  * `:optimizer`: `:labeled_few_shot` (the default: trainset examples become demos) or
    `:bootstrap_few_shot` (runs the program on the trainset and keeps as demos the runs the
    metric accepts);
  * `:metric`: `{:exact_match, field}`, or an Elixir function
    `(example, prediction -> boolean | number)` called back like a ReAct tool (both maps
    with string keys); required by `:bootstrap_few_shot`;
  * `:as`: store the compiled program under this ID instead of replacing `id`;
  * `:k` (labeled), `:max_bootstrapped_demos`, `:max_labeled_demos`, `:max_errors`
    (bootstrap), `:metric_timeout` (ms), `:timeout`.
  """

  # `compile/4`'s optimizer and metric, as plain data for the Python side.

  import DSPex.Native.Args, only: [integers: 2, invalid: 1]
  import DSPex.Native.Tool, only: [fun_handle: 1]

  @counts [:k, :max_bootstrapped_demos, :max_labeled_demos, :max_errors]

  @doc false
  def options, do: [:optimizer, :metric, :metric_timeout | @counts]

  @doc false
  # compile's arguments for Python: the optimizer, the metric, and the numeric options
  # that were given (their defaults are Python's; `metric_timeout` in milliseconds).
  def args(trainset, opts) do
    with {:ok, optimizer} <- optimizer(Keyword.get(opts, :optimizer, :labeled_few_shot)),
         {:ok, metric} <- metric(Keyword.get(opts, :metric)),
         true <- is_list(trainset) || {:error, invalid("trainset must be a list of maps")},
         {:ok, counts} <- integers(Keyword.take(opts, @counts), 0),
         {:ok, timeout} <- integers(Keyword.take(opts, [:metric_timeout]), 1) do
      options = Map.merge(counts, timeout)

      {:ok,
       %{
         "trainset" => trainset,
         "optimizer" => optimizer,
         "metric" => metric,
         "options" => options
       }}
    end
  end

  defp optimizer(o) when o in [:labeled_few_shot, :bootstrap_few_shot],
    do: {:ok, Atom.to_string(o)}

  defp optimizer(o),
    do:
      {:error,
       invalid("optimizer must be :labeled_few_shot or :bootstrap_few_shot, got #{inspect(o)}")}

  defp metric(nil), do: {:ok, nil}

  defp metric({:exact_match, field}) when is_atom(field) or is_binary(field),
    do: {:ok, %{"kind" => "exact_match", "field" => to_string(field)}}

  # The function goes with this compile only: Python drops it when the compile ends.
  defp metric(fun) when is_function(fun, 2) do
    {:ok,
     %{
       "kind" => "elixir",
       "key" => fun_handle(fn %{"example" => e, "prediction" => p} -> fun.(e, p) end)
     }}
  end

  defp metric(other),
    do:
      {:error,
       invalid(
         "metric must be {:exact_match, field} or a 2-arity function, got #{inspect(other)}"
       )}
end
