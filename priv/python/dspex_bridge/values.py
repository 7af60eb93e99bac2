"""Python values that have an Elixir form.

Elixir terms arrive as None, bool, int, float, str, list, tuple, dict and `Atom` (a str
subclass, so DSPy sees plain text while the atom survives a round trip). Results go back
through `to_plain`, which turns DSPy and pydantic objects into those same types and refuses
anything else, naming where it was.
"""

import math


class Atom(str):
    """An Elixir atom: behaves as its name in Python, comes back to Elixir as the atom."""

    __slots__ = ()

    def __repr__(self):
        return f"Atom({str.__repr__(self)})"


class Unrepresentable(Exception):
    """A Python value with no Elixir form."""


def to_plain(value, path="result"):
    """Convert a result to types the Rust codec maps to Elixir terms."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise Unrepresentable(f"{path} is {value!r}, which has no Elixir form")
        return value
    if isinstance(value, (list, tuple)):
        items = [to_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict):
        return {to_plain(k, f"{path} key"): to_plain(v, f"{path}[{k!r}]") for k, v in value.items()}
    # dspy.Prediction / dspy.Example
    to_dict = getattr(value, "toDict", None)
    if callable(to_dict):
        return to_plain(to_dict(), path)
    # pydantic models (typed DSPy outputs)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return to_plain(dump(mode="json"), path)
    raise Unrepresentable(f"{path} is a Python {type(value).__name__}, which has no Elixir form")


def field_name(key, what):
    """A map key used as a field or input name: str or Atom, else a clear error."""
    if isinstance(key, str):
        return str(key)
    raise TypeError(f"{what} {key!r} must be an atom or a string")
