"""Each LM call a job makes, reported to the job's caller (which emits
`[:dspex_native, :lm, :stop]`): model, token usage, cost and duration.

DSPy records every LM call in `GLOBAL_HISTORY`, which `scope.SessionHistory` replaces; its
`append` hands each entry here. That covers calls made on threads the job started (DSPy's
`Parallel`, `Evaluate(num_threads=...)`): the caller travels in the DSPy context they copy
(`scope.caller()`). Cache hits count as calls. An LM call that fails records nothing, and
neither does code that sets `disable_history`.

Reports are sent only while the Elixir side asks for them (`hooks.lm_events()`, true when
`:telemetry` is loaded), so without telemetry an LM call costs one flag read more.
"""

import contextvars
import functools
import time

from . import hooks

# When the running LM call started (time.monotonic()), for its duration.
_STARTED = contextvars.ContextVar("dspex_lm_started", default=None)


def _timed(call):
    if getattr(call, "_dspex_timed", False):
        return call

    @functools.wraps(call)
    def timed(self, *args, **kwargs):
        token = _STARTED.set(time.monotonic())
        try:
            return call(self, *args, **kwargs)
        finally:
            _STARTED.reset(token)

    timed._dspex_timed = True
    return timed


def _timed_async(call):
    if getattr(call, "_dspex_timed", False):
        return call

    @functools.wraps(call)
    async def timed(self, *args, **kwargs):
        token = _STARTED.set(time.monotonic())
        try:
            return await call(self, *args, **kwargs)
        finally:
            _STARTED.reset(token)

    timed._dspex_timed = True
    return timed


def install():
    """Times every LM call (called once, at setup)."""
    from dspy.clients.base_lm import BaseLM

    BaseLM.__call__ = _timed(BaseLM.__call__)
    BaseLM.acall = _timed_async(BaseLM.acall)


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def report(entry, caller):
    """Sends one history entry's figures to the job's caller, if it asks for them."""
    wanted = hooks.lm_events
    notify = hooks.notify_elixir
    if not (wanted and notify and wanted()):
        return
    started = _STARTED.get()
    usage = entry.get("usage") if isinstance(entry.get("usage"), dict) else {}
    payload = {
        "kind": "lm",
        "model": str(entry.get("model") or ""),
        "prompt_tokens": _number(usage.get("prompt_tokens")),
        "completion_tokens": _number(usage.get("completion_tokens")),
        "total_tokens": _number(usage.get("total_tokens")),
        "cost": _number(entry.get("cost")),
        "duration_ms": (time.monotonic() - started) * 1000.0 if started is not None else None,
    }
    try:
        notify(payload, caller)
    except Exception:  # noqa: BLE001  (a report must never fail the LM call)
        pass
