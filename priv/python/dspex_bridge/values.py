"""Python values that have an Elixir form.

Elixir terms arrive as None, bool, int, float, str, list, tuple, dict and `Atom` (a str
subclass, so DSPy sees plain text while the atom survives a round trip). Results go back
through `to_plain`, which turns DSPy and pydantic objects into those same types and refuses
anything else, naming where it was.
"""

import math

from dspy import Example


class Atom(str):
    """An Elixir atom: behaves as its name in Python, comes back to Elixir as the atom."""

    __slots__ = ()

    def __repr__(self):
        return f"Atom({str.__repr__(self)})"


class Unrepresentable(Exception):
    """A Python value with no Elixir form."""


# How deep a value may nest, as on the Rust side (MAX_DEPTH, plus up to MAX_FRAMING levels
# of a call's own wrapping, like result.trajectory.observation_0): a value nested deeper, or
# containing itself, is refused instead of looped on. The Rust side checks the exact limit.
MAX_DEPTH = 512
MAX_FRAMING = 4

# A marker for "this place opened a container; its value comes when the container ends".
_OPENED = object()
_END = object()


class _Frame:
    """A list, tuple or dict being converted: the source's items and the plain copy."""

    __slots__ = ("items", "out", "kind", "index", "key", "source_key", "value", "on_key")

    def __init__(self, kind, items):
        self.kind = kind
        self.items = items
        self.out = {} if kind == "dict" else []
        self.index = 0
        self.key = None
        self.source_key = None
        self.value = None  # a dict's value, waiting while its key is converted
        self.on_key = True

    def step(self):
        """How the child being converted is named in an error."""
        if self.kind != "dict":
            return f"[{self.index}]"
        return " key" if self.on_key else f"[{self.source_key!r}]"

    def next(self):
        if self.kind != "dict":
            return next(self.items, _END)
        if self.on_key:
            pair = next(self.items, _END)
            if pair is _END:
                return _END
            self.source_key, self.value = pair
            return self.source_key
        value, self.value = self.value, None
        return value

    def accept(self, plain):
        if self.kind != "dict":
            self.out.append(plain)
            self.index += 1
        elif self.on_key:
            self.key = plain
            self.on_key = False
        else:
            self.out[self.key] = plain
            self.on_key = True

    def finish(self):
        return tuple(self.out) if self.kind == "tuple" else self.out


def _where(path, frames):
    return path + "".join(frame.step() for frame in frames)


def _open(value, path, frames):
    """A plain leaf, or _OPENED after pushing a frame for a container."""
    while True:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if math.isnan(value) or math.isinf(value):
                raise Unrepresentable(f"{_where(path, frames)} is {value!r}, which has no Elixir form")
            return value
        if isinstance(value, (list, tuple)):
            frames.append(_Frame("tuple" if isinstance(value, tuple) else "list", iter(value)))
            return _OPENED
        if isinstance(value, dict):
            frames.append(_Frame("dict", iter(value.items())))
            return _OPENED
        # dspy.Prediction / dspy.Example, by their fields: toDict() recurses into nested data.
        if isinstance(value, Example):
            value = dict(value.items(include_dspy=True))
            continue
        # Other objects that describe themselves as a dict
        to_dict = getattr(value, "toDict", None)
        if callable(to_dict):
            value = to_dict()
            continue
        # pydantic models (typed DSPy outputs)
        dump = getattr(value, "model_dump", None)
        if callable(dump):
            value = dump(mode="json")
            continue
        raise Unrepresentable(
            f"{_where(path, frames)} is a Python {type(value).__name__}, which has no Elixir form"
        )


def to_plain(value, path="result"):
    """Convert a result to types the Rust codec maps to Elixir terms.

    Walks with a list of frames, not recursion, so deep results cost no Python stack, and
    names the place of an error only when there is one."""
    if isinstance(value, Example):
        value = dict(value.items(include_dspy=True))
    if type(value) is dict and _flat(value):
        return value
    frames = []
    item = value
    while True:
        if len(frames) >= MAX_DEPTH + MAX_FRAMING:
            raise Unrepresentable(f"{_where(path, frames)} nests deeper than {MAX_DEPTH} levels")
        done = _open(item, path, frames)
        while True:
            if not frames:
                return done
            top = frames[-1]
            if done is not _OPENED:
                top.accept(done)
            item = top.next()
            if item is not _END:
                break
            frames.pop()
            done = top.finish()


_SCALARS = frozenset({str, int, bool, type(None)})


def _flat(mapping):
    """True if every key is a string and every value a plain scalar: most results (a
    Prediction's fields) need no walk."""
    for key, item in mapping.items():
        kind = type(item)
        if type(key) is not str or not (kind in _SCALARS or (kind is float and math.isfinite(item))):
            return False
    return True


def field_name(key, what):
    """A map key used as a field or input name: str or Atom, else a clear error."""
    if isinstance(key, str):
        return str(key)
    raise TypeError(f"{what} {key!r} must be an atom or a string")
