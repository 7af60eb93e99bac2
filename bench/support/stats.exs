defmodule Bench.Stats do
  @moduledoc """
  Every median, percentile and verdict of the benchmark is computed here.

  A row holds, per contender, one figure per round. Rounds interleave the contenders
  (see `Bench.Measure.rounds/3`), so round `r` of ours and round `r` of a baseline ran
  seconds apart under the same machine conditions: comparisons use the per-round pairs.

  The spread rule: a row is *too wide to compare* when

    * a contender's figures vary by more than 1.3× across rounds (max ÷ min), or
    * the per-round scores (ours ÷ baseline, ours − baseline, or ours alone) fall
      on both sides of the target: some rounds pass, others miss, so even the sign of
      the comparison is uncertain.

  Its verdict is then PASS? or MISS? (what the median says, not to be trusted).
  """

  @max_spread 1.3

  def max_spread, do: @max_spread

  def median([]), do: nil
  def median(xs), do: percentile(xs, 0.5)

  # Nearest rank; the median of an even count is the mean of the two middle values.
  def percentile(xs, p) when p == 0.5 do
    sorted = Enum.sort(xs)
    n = length(sorted)
    mid = div(n, 2)

    if rem(n, 2) == 1,
      do: Enum.at(sorted, mid),
      else: (Enum.at(sorted, mid - 1) + Enum.at(sorted, mid)) / 2
  end

  def percentile(xs, p) do
    sorted = Enum.sort(xs)
    Enum.at(sorted, min(length(sorted) - 1, trunc(length(sorted) * p)))
  end

  @doc "`%{median, min, max, spread, n}` of one contender's per-round figures."
  def summary(nil), do: nil
  def summary([]), do: nil

  def summary(xs) do
    {lo, hi} = Enum.min_max(xs)
    %{median: median(xs), min: lo, max: hi, spread: spread(lo, hi), n: length(xs)}
  end

  defp spread(lo, hi) when lo > 0, do: hi / lo
  defp spread(lo, hi) when lo == hi, do: 1.0
  defp spread(_, _), do: nil

  @doc "Per-round ratios of `a` to `b` (the rounds paired in order)."
  def ratios(nil, _), do: nil
  def ratios(_, nil), do: nil
  def ratios(a, b), do: for({x, y} <- Enum.zip(a, b), y != 0, do: x / y)

  @doc """
  Per-round scores for a target: `{:ratio, ref, op, t}` (ours ÷ ref), `{:diff, ref, op, t}`
  (ours − ref), `{:abs, op, t}` (ours).
  """
  def scores(rounds, {:ratio, ref, _, _}), do: ratios(rounds.ours, rounds[ref])

  def scores(rounds, {:diff, ref, _, _}),
    do: for({x, y} <- Enum.zip(rounds.ours, rounds[ref]), do: x - y)

  def scores(rounds, {:abs, _, _}), do: rounds.ours

  @doc """
  `{verdict, why}`: "PASS"/"MISS" by the median score, with "?" when the row is too wide
  to compare (see the module doc); `why` says which rule fired, or nil.
  """
  def verdict(_rounds, nil), do: {nil, nil}

  def verdict(rounds, target) do
    scores = scores(rounds, target)
    {op, t} = op_threshold(target)
    pass = meets?(median(scores), op, t)
    {lo, hi} = Enum.min_max(scores)

    wide =
      for name <- involved(target),
          s = summary(rounds[name]),
          s.spread == nil or s.spread > @max_spread,
          do: "#{name} spread #{Float.round(s.spread || 0.0, 2)}×"

    straddles = meets?(lo, op, t) != meets?(hi, op, t)
    why = wide ++ if(straddles, do: ["rounds on both sides of the target"], else: [])
    word = if pass, do: "PASS", else: "MISS"
    if why == [], do: {word, nil}, else: {word <> "?", Enum.join(why, "; ")}
  end

  defp op_threshold({:abs, op, t}), do: {op, t}
  defp op_threshold({_, _, op, t}), do: {op, t}

  defp involved({:abs, _, _}), do: [:ours]
  defp involved({_, ref, _, _}), do: [:ours, ref]

  defp meets?(x, :<=, t), do: x <= t
  defp meets?(x, :>=, t), do: x >= t
end
