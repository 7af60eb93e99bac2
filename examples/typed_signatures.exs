# Typed outputs: fields carry types, results come back as Elixir terms.
#   mix run examples/typed_signatures.exs
alias DSPex.Native.Session
:ok = DSPex.Native.await_ready()

lm =
  {:dummy,
   %{"" => %{"sentiment" => "positive", "score" => "0.92", "topics" => ~s(["food", "service"])}}}

s = Session.open!(name: "typed", lm: lm)

:ok =
  Session.create_program(s, "review",
    signature: %{
      inputs: [review: "a restaurant review"],
      outputs: [
        sentiment: [type: {:literal, [:positive, :negative, :neutral]}, desc: "overall tone"],
        score: :float,
        topics: {:list, :string}
      ],
      instructions: "Classify the review."
    }
  )

{:ok, out} = Session.execute(s, "review", %{review: "Great pasta, friendly staff."})
IO.inspect(out, label: "typed outputs")
