"""Errors that cross the bridge as `%DSPex.Native.Error{}`.

A `BridgeError` carries one of the reasons the Elixir side documents (`already_exists`,
`not_found`, `invalid_signature`, ...). Any other exception becomes `python_error` with its
qualified type name and traceback.
"""

import json
import traceback

# Reasons Elixir knows as atoms; anything else is reported as python_error.
REASONS = frozenset(
    {
        "already_exists",
        "not_found",
        "closed",
        "invalid_signature",
        "invalid_argument",
        "no_lm",
        "python_error",
    }
)


class BridgeError(Exception):
    """An error with a reason Elixir matches on."""

    def __init__(self, reason: str, message: str):
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason
        self.message = message



def quote(value):
    """`value` as an error message shows it: strings in double quotes, as Elixir prints them
    (Rust's messages do the same), anything else as its repr."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)

def _safe_str(exc: BaseException) -> str:
    # An exception whose __str__ raises must still be reportable.
    try:
        return str(exc)
    except BaseException:  # noqa: BLE001
        try:
            return object.__repr__(exc)
        except BaseException:  # noqa: BLE001
            return "<unprintable exception>"


def _type_name(exc: BaseException) -> str:
    t = type(exc)
    module = getattr(t, "__module__", None)
    name = getattr(t, "__qualname__", t.__name__)
    return name if module in (None, "builtins") else f"{module}.{name}"


def describe(exc: BaseException, secrets=()) -> dict:
    """The error as a plain dict for Elixir, with every secret scrubbed from its text."""
    if isinstance(exc, BridgeError):
        out = {"reason": exc.reason, "message": exc.message, "python_type": None, "traceback": None}
    else:
        try:
            tb = "".join(traceback.format_exception(exc))
        except BaseException:  # noqa: BLE001
            tb = None
        out = {
            "reason": "python_error",
            "message": _safe_str(exc),
            "python_type": _type_name(exc),
            "traceback": tb,
        }
    for key in ("message", "traceback"):
        out[key] = scrub(out[key], secrets)
    return out


def scrub(text, secrets):
    """Replace every secret (API keys) in text; errors and logs must never show one."""
    if not text:
        return text
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[REDACTED]")
    return text
