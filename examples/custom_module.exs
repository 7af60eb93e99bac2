# A dspy.Module written in Python, loaded into one session only. Its print and logging
# output reaches this process (stdout and Logger), not the raw file descriptors.
#   mix run examples/custom_module.exs
alias DSPex.Native.Session
:ok = DSPex.Native.await_ready()

source = """
import logging
import dspy

class Summarize(dspy.Module):
    def __init__(self):
        super().__init__()
        self.summarize = dspy.ChainOfThought("text -> summary")

    def forward(self, text):
        print(f"summarizing {len(text)} characters")
        logging.getLogger("summarize").warning("this is a demo")
        return self.summarize(text=text)
"""

s =
  Session.open!(
    name: "custom",
    lm: {:dummy, %{"" => %{"reasoning" => "short text", "summary" => "A demo."}}}
  )

{:ok, classes} = Session.load_module(s, "summarize", source)
IO.inspect(classes, label: "loaded")
:ok = Session.create_program(s, "sum", module: {:custom, "Summarize"})

IO.inspect(Session.execute(s, "sum", %{text: "dspex_native runs DSPy in the BEAM."}),
  label: "result"
)
