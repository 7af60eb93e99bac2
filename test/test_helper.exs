# Python starts in the background with the application; wait for it once, so no test's
# timeout pays for `import dspy`.
:ok = DSPex.Native.await_ready(120_000)
ExUnit.start(exclude: [:soak])
