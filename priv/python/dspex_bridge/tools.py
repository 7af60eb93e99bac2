"""Elixir functions that DSPy calls: ReAct tools (also `dspy.Tool` inputs) and metrics.

Each call goes to the running job's caller, which runs the function in a process tied to
the job; the worker waits without the GIL, and an Elixir error or timeout raises here.
A function crosses as the capsule of its NIF handle (`key`), kept by what uses it.
"""

import dspy

from . import hooks, scope
from .errors import BridgeError, quote
from .values import to_plain


def tool(spec, timeout):
    """A dspy.Tool whose function runs in the BEAM: the call goes to the job's caller, the
    worker waits without the GIL, and an Elixir error or timeout raises here, which ReAct
    reports to the LM as a tool error."""
    key = spec["key"]

    def call_elixir(**kwargs):
        return hooks.call_elixir({"key": key, "args": kwargs}, float(timeout), scope.caller())

    return dspy.Tool(
        call_elixir,
        name=str(spec["name"]),
        desc=spec.get("description") or "",
        args={str(k): v for k, v in (spec.get("args") or {}).items()},
    )


def metric(spec, timeout):
    """DSPy metric from Elixir's: None, exact match on a field, or an Elixir function."""
    if spec is None:
        return None
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind == "exact_match":
        field = str(spec["field"])

        def exact_match(example, prediction, trace=None):
            return str(getattr(prediction, field, None)).strip() == str(example.get(field)).strip()

        return exact_match
    if kind == "elixir":
        key = spec["key"]

        def elixir_metric(example, prediction, trace=None):
            answer = hooks.call_elixir(
                {"key": key, "args": {"example": to_plain(example.toDict()), "prediction": to_plain(prediction)}},
                timeout,
                scope.caller(),
            )
            if isinstance(answer, bool) or isinstance(answer, (int, float)):
                return answer
            raise TypeError(f"the metric returned {quote(answer)}; it must return a boolean or a number")

        return elixir_metric
    raise BridgeError("invalid_argument", f"unknown metric {quote(spec)}")
