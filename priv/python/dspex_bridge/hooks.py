"""The functions that reach the Elixir side of the running job, filled in by Rust at setup.

The runtime sets them right after importing `dspex_bridge` (before any job runs); Python code
calls them through this module (`from . import hooks`, then `hooks.call_elixir(...)`), so a
test can replace one with `monkeypatch.setattr(hooks, "call_elixir", fake)`.

- `call_elixir(request, timeout_seconds)`: runs the Elixir function `request["key"]` on
  `request["args"]` in the job's caller and returns its answer; the worker waits without the
  GIL. Raises `TimeoutError`, or `RuntimeError` when the call fails, was cancelled, or there
  is no caller on this thread.
- `notify_elixir(payload)`: sends printed text or a log record to the job's caller without
  waiting; false when no caller listens (the caller of this writes it itself).
- `current_caller()`: the running job's way back to its caller as an opaque object (None
  outside a job); passed as the last argument of the two above, it lets a thread the job
  started (DSPy's `Parallel`, `Evaluate(num_threads=...)`) reach the same caller.
- `lm_events()`: whether jobs report each LM call to their caller (`observe`).

All stay None outside the embedded runtime (plain pytest).
"""

call_elixir = None
notify_elixir = None
current_caller = None
lm_events = None
