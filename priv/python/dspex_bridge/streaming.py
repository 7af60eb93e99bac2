"""Streaming a program's answer to its caller, piece by piece (`Session.stream/4`).

DSPy's `streamify` runs the program with a `StreamListener` per streamed output field; each
piece (and, with `status`, each status message) goes to the caller through
`hooks.call_elixir`, which waits without the GIL until the caller has taken it: at most one
piece per stream is in flight, so a slow consumer slows the stream instead of filling its
mailbox. A cancelled job stops waiting at once. LMs that do not stream (DSPy's DummyLM)
send no pieces: the caller gets only the final outputs.
"""

import asyncio
import weakref

import dspy
from dspy.streaming import StatusMessage, StreamListener, StreamResponse

from . import hooks, scope
from .errors import BridgeError

# How long a piece may wait for the caller to take it: the call's own deadline (and its
# cancellation) bounds the stream; this only guards against a caller that never asks.
_TAKE_TIMEOUT_S = 24 * 3600


def _fields(module, asked):
    if asked:
        if not isinstance(asked, list) or not all(isinstance(f, str) for f in asked):
            raise BridgeError("invalid_argument", "fields must be a list of output field names")
        return [str(f) for f in asked]
    predictors = module.predictors()
    if not predictors:
        return []
    outputs = predictors[-1].signature.output_fields
    return [name for name, field in outputs.items() if field.annotation is str]


def _send(event):
    hooks.call_elixir({"stream": event}, _TAKE_TIMEOUT_S, scope.caller())


def run(module, inputs, args):
    """Runs `module` streaming; returns its final prediction."""
    listeners = [StreamListener(signature_field_name=f) for f in _fields(module, args.get("fields"))]
    status = bool(args.get("status"))
    streamed = dspy.streamify(module, stream_listeners=listeners, async_streaming=False)
    prediction = None
    for item in streamed(**inputs):
        if isinstance(item, StreamResponse):
            _send({"kind": "chunk", "field": item.signature_field_name, "text": item.chunk})
        elif isinstance(item, StatusMessage):
            if status:
                _send({"kind": "status", "text": item.message})
        elif isinstance(item, dspy.Prediction):
            prediction = item
    if prediction is None:
        raise BridgeError("python_error", "the stream ended without a prediction")
    return prediction


def install():
    """One capacity limiter per event loop for DSPy's `asyncify` (DSPy keeps one for the
    process): each stream runs its own event loop, and a limiter shared across loops never
    wakes a waiter of another loop, so more streams than `async_max_workers` deadlock."""
    import anyio
    from dspy.utils import asyncify

    limiters = weakref.WeakKeyDictionary()

    def get_limiter():
        loop = asyncio.get_running_loop()
        wanted = asyncify.get_async_max_workers()
        limiter = limiters.get(loop)
        if limiter is None:
            limiter = limiters[loop] = anyio.CapacityLimiter(wanted)
        elif limiter.total_tokens != wanted:
            limiter.total_tokens = wanted
        return limiter

    asyncify.get_limiter = get_limiter
