defmodule Bench.Report do
  @moduledoc """
  Rows of the table: per contender, the median of its per-round figures with min–max;
  per baseline, the median of the per-round ratios; the target and its verdict
  (`Bench.Stats.verdict/2`). Printed as Markdown and written as JSON.
  """

  alias Bench.Stats
  alias DSPex.Native.Test.OpenAIServer.JSON

  @contenders [ours: "dspex_native", plain: "plain Python", port: "port bridge"]

  @doc """
  A row. `rounds` is `%{ours: [..], plain: [..], port: [..]}` (baselines optional), one
  figure per round. Options: `:target` (see `Bench.Stats.scores/2`) with `:target_text`,
  `:note`.
  """
  def row(workload, metric, unit, rounds, opts \\ []) do
    {others, host, redone} = {rounds[:others], rounds[:host], rounds[:redone]}
    meta = Bench.Measure.meta()
    rounds = Map.new(for {k, v} <- rounds, k not in meta, v not in [nil, []], do: {k, v})
    target = opts[:target]
    {verdict, why} = Stats.verdict(rounds, target)

    %{
      workload: workload,
      metric: metric,
      unit: unit,
      rounds: rounds,
      summary: Map.new(rounds, fn {k, v} -> {k, Stats.summary(v)} end),
      vs: %{
        plain: Stats.summary(Stats.ratios(rounds[:ours], rounds[:plain])),
        port: Stats.summary(Stats.ratios(rounds[:ours], rounds[:port]))
      },
      target: target,
      target_text: opts[:target_text] || target_text(target, unit),
      score: target && Stats.median(Stats.scores(rounds, target)),
      verdict: verdict,
      why: why,
      note: opts[:note],
      others: others && Stats.summary(others),
      host: if(host not in [nil, []], do: Stats.summary(host)),
      redone: redone
    }
  end

  defp target_text(nil, _), do: nil
  defp target_text({:abs, op, t}, unit), do: "#{op_text(op)} #{num(t)} #{unit}"
  defp target_text({:ratio, ref, op, t}, _), do: "#{op_text(op)} #{num(t)}× #{@contenders[ref]}"

  defp target_text({:diff, ref, op, t}, unit),
    do: "#{op_text(op)} #{@contenders[ref]} + #{num(t)} #{unit}"

  defp op_text(:<=), do: "≤"
  defp op_text(:>=), do: "≥"

  @doc "A number for the table: 3 significant figures or whole."
  def num(nil), do: ""
  def num(x) when is_integer(x), do: Integer.to_string(x)
  def num(x) when abs(x) >= 100, do: Integer.to_string(round(x))
  def num(x) when abs(x) >= 10, do: :erlang.float_to_binary(x / 1, decimals: 1)
  def num(x), do: :erlang.float_to_binary(x / 1, decimals: 2)

  defp cell(nil, _), do: ""
  defp cell(%{n: 1, median: m}, unit), do: "#{num(m)} #{unit}"
  defp cell(s, unit), do: "#{num(s.median)} #{unit} (#{num(s.min)}–#{num(s.max)})"

  defp ratio_cell(nil), do: ""
  defp ratio_cell(s), do: "#{num(s.median)}× (#{num(s.min)}–#{num(s.max)})"

  defp others_cell(nil, _), do: ""
  defp others_cell(s, n) when n in [nil, 0], do: "#{num(s.median)} (≤ #{num(s.max)})"
  defp others_cell(s, 1), do: "#{num(s.median)} (≤ #{num(s.max)}); 1 turn redone"
  defp others_cell(s, n), do: "#{num(s.median)} (≤ #{num(s.max)}); #{n} turns redone"

  defp host_cell(nil), do: ""
  defp host_cell(s), do: "#{num(s.median)} ns (≤ #{num(s.max)})"

  defp verdict_cell(%{verdict: nil}), do: ""

  defp verdict_cell(r) do
    score =
      case r.target do
        {:ratio, _, _, _} -> "#{num(r.score)}×"
        {:diff, _, _, _} -> "#{if r.score >= 0, do: "+"}#{num(r.score)} #{r.unit}"
        {:abs, _, _} -> "#{num(r.score)} #{r.unit}"
      end

    "**#{r.verdict}** #{score}" <> if(r.why, do: " (#{r.why})", else: "")
  end

  def line(r), do: "  #{r.workload} / #{r.metric}: #{cell(r.summary[:ours], r.unit)}"

  def print(rows) do
    header =
      ~w(workload metric rounds) ++
        Keyword.values(@contenders) ++
        ["vs plain", "vs port", "target", "verdict", "others' CPU", "cross-core"]

    IO.puts("\n| " <> Enum.join(header, " | ") <> " |")
    IO.puts("|" <> String.duplicate(" --- |", length(header)))

    for r <- rows do
      cells =
        [r.workload, r.metric, r.summary |> Map.values() |> Enum.map(& &1.n) |> Enum.max()] ++
          for({k, _} <- @contenders, do: cell(r.summary[k], r.unit)) ++
          [ratio_cell(r.vs.plain), ratio_cell(r.vs.port), r.target_text || "", verdict_cell(r)] ++
          [others_cell(r.others, r.redone), host_cell(r.host)]

      IO.puts("| " <> Enum.join(cells, " | ") <> " |")
    end

    IO.puts("""

    Each figure: median over the rounds (min–max). Rounds interleave the contenders, order
    rotated; "vs" columns are the medians of per-round ratios. A verdict ends in "?" when
    the row is too wide to compare: a contender varied by more than #{Stats.max_spread()}× across
    rounds, or some rounds met the target and others did not. "others' CPU": cores used
    by processes other than the bench's own during the row's turns, median (max); a turn
    during which they used more than 0.2 was run again once the machine was calm (up to
    twice): a max above 0.2 means a turn stayed disturbed and the row is suspect.
    "cross-core": the host's round trip between two CPUs after each turn, median (max); a
    turn starts only while it is within #{Bench.Host.slow()}× the run's fastest and is run again when it
    was not: a larger max means a turn stayed in one of the host's slow episodes.
    """)

    for r <- rows, r.note, do: IO.puts("#{r.workload} / #{r.metric}: #{r.note}")
  end

  def write(rows, meta, path) do
    File.mkdir_p!(Path.dirname(path))

    json_rows =
      for r <- rows do
        %{
          "workload" => r.workload,
          "metric" => r.metric,
          "unit" => r.unit,
          "rounds" => stringify(r.rounds),
          "summary" => stringify(r.summary),
          "vs" => stringify(r.vs),
          "target" => r.target_text,
          "score" => r.score,
          "verdict" => r.verdict,
          "why" => r.why,
          "note" => r.note,
          "others_cpu" => r.others && stringify(r.others),
          "cross_core_ns" => r.host && stringify(r.host),
          "turns_redone" => r.redone
        }
      end

    File.write!(path, JSON.encode!(Map.put(stringify(meta), "rows", json_rows)))
  end

  defp stringify(map) when is_map(map),
    do: Map.new(map, fn {k, v} -> {to_string(k), stringify(v)} end)

  defp stringify(x), do: x
end
