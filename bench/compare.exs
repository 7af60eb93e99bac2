# Are runs steady? `mix run --no-start bench/compare.exs A.json B.json ...` (files written by
# `make bench ARGS="--out PATH"`): per row, the median of ours (of plain Python where ours
# has none) and of the ratio its target reads, in each run, and max ÷ min across runs; rows
# above 1.15 are marked unsteady.

Code.require_file("../test/support/openai_server.ex", __DIR__)

for file <- ~w(stats machine host measure report),
    do: Code.require_file("support/#{file}.exs", __DIR__)

alias DSPex.Native.Test.OpenAIServer.JSON

runs = Enum.map(System.argv(), &JSON.decode!(File.read!(&1)))
if length(runs) < 2, do: raise("give two or more results files")
key = fn r -> r["workload"] <> " / " <> r["metric"] end

medians = fn row ->
  ours = get_in(row, ["summary", "ours", "median"]) || get_in(row, ["summary", "plain", "median"])

  ratio =
    Enum.find_value(["plain", "port"], fn ref ->
      if String.contains?(row["target"] || "", ref) or
           (ref == "plain" and (row["target"] || "") =~ "import dspy"),
         do: get_in(row, ["vs", ref, "median"])
    end)

  {ours, ratio}
end

by_run = Enum.map(runs, fn run -> Map.new(run["rows"], &{key.(&1), medians.(&1)}) end)

spread = fn xs ->
  if Enum.all?(xs, &(is_number(&1) and &1 > 0)), do: Enum.max(xs) / Enum.min(xs)
end

num = &Bench.Report.num/1

IO.puts(
  "| row | ours, run by run | max ÷ min | ratio to baseline, run by run | max ÷ min | steady (≤ 1.15) |"
)

IO.puts("| --- | --- | --- | --- | --- | --- |")

for row <- hd(runs)["rows"], k = key.(row), Enum.all?(by_run, &Map.has_key?(&1, k)) do
  ours = Enum.map(by_run, &elem(&1[k], 0))
  ratios = Enum.map(by_run, &elem(&1[k], 1))
  s1 = spread.(ours)
  s2 = if Enum.all?(ratios, & &1), do: spread.(ratios)
  steady = Enum.all?([s1, s2], &(&1 == nil or &1 <= 1.15))

  IO.puts(
    "| #{k} | #{Enum.map_join(ours, " / ", num)} | #{num.(s1)} | " <>
      "#{if s2, do: Enum.map_join(ratios, " / ", &"#{num.(&1)}×"), else: ""} | #{num.(s2)} | " <>
      "#{if steady, do: "yes", else: "**no**"} |"
  )
end
