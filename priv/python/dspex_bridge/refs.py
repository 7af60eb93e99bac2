"""Python objects that Elixir holds by reference (`DSPex.Native.Py`, `%DSPex.Native.Ref{}`).

Each session keeps its referenced objects in its own table, `session.refs`, by number. A ref
crosses the boundary as the pair `(REF_TAG, number)`; Elixir wraps it in a NIF resource
whose collection releases the number here. Refs are resolved only in the session that made
them, so a number forged or copied from another session reaches nothing of that session.

Dotted paths (`"dspy.ChainOfThought"`) are resolved from scratch each time, only under the
allowed roots (`importable`, `["dspy"]` by default), one identifier at a time, never through
a name starting with an underscore: a path names an object, it is never evaluated.
"""

import importlib
import math
import re

import dspy

from . import hooks, scope
from .errors import BridgeError, quote
from .values import Atom

REF_TAG = Atom("$dspex_ref")
IMPORTABLE = ("dspy",)  # set by the runtime's `importable` setting
MAX_DEPTH = 500

# How long an Elixir function (a tool, a metric, a function passed to Py.call) may take,
# unless the call says; milliseconds, as every time that crosses the boundary.
CALLBACK_TIMEOUT_MS = 30_000

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _invalid(message):
    return BridgeError("invalid_argument", message)


# -- paths -------------------------------------------------------------------------------


def resolve(path):
    """The object a dotted path names, under an allowed root."""
    if not isinstance(path, str) or not path:
        raise _invalid("a target must be a dotted path such as \"dspy.Predict\", or a ref")
    parts = path.split(".")
    bad = [p for p in parts if not _IDENT.match(p)]
    if bad:
        raise _invalid(f"{quote(path)}: {quote(bad[0])} is not a public name (letters, digits and _, not starting with _)")
    if parts[0] not in IMPORTABLE:
        raise _invalid(
            f"{quote(path)}: the root {quote(parts[0])} is not importable; allowed: {', '.join(IMPORTABLE)} "
            f"(config :dspex_native, importable: [...])"
        )
    obj = importlib.import_module(parts[0])
    for n, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            # A submodule that its package does not import itself.
            try:
                obj = importlib.import_module(".".join(parts[: n + 1]))
            except ImportError:
                raise _invalid(f"{quote(path)}: {'.'.join(parts[:n])} has no {quote(part)}") from None
    return obj


def check_name(name):
    if not isinstance(name, str) or not _IDENT.match(name):
        raise _invalid(f"{quote(name)} is not a public attribute name (letters, digits and _, not starting with _)")
    return str(name)


# -- values in -----------------------------------------------------------------------------


def get(session, number):
    obj = session.refs.get(number, _MISSING) if isinstance(number, int) and not isinstance(number, bool) else _MISSING
    if obj is _MISSING:
        raise _invalid(f"ref {quote(number)} is not a live object of {session.label()}")
    return obj


_MISSING = object()


def _is_ref(value):
    return type(value) is tuple and len(value) in (2, 3) and value[0] == REF_TAG and type(value[0]) is Atom


class ElixirFunction:
    """An Elixir function passed to Python: calling it runs the function in the BEAM (in a
    process tied to the running job) while this thread waits without the GIL. Its arguments
    cross as results do (an Example or Prediction as a map of its fields, other objects as
    refs); what it returns crosses as any argument does."""

    __slots__ = ("handle", "session", "timeout_ms", "__weakref__")

    def __init__(self, handle, session, timeout_ms):
        self.handle = handle
        self.session = session
        self.timeout_ms = timeout_ms

    def __call__(self, *args, **kwargs):
        payload = [encode(self.session, a) for a in args] + ([encode(self.session, kwargs)] if kwargs else [])
        answer = hooks.call_elixir({"key": self.handle, "args": payload}, self.timeout_ms / 1000, scope.caller())
        return decode(self.session, answer)

    def __repr__(self):
        return "<Elixir function>"


def _is_handle(value):
    # A function Elixir passed: it arrives as the capsule of its NIF handle.
    return type(value).__name__ == "PyCapsule"


def decode(session, value, timeout_ms=CALLBACK_TIMEOUT_MS):
    """An argument from Elixir with every ref replaced by its object and every Elixir
    function by a callable (walked without recursion)."""
    if _is_ref(value):
        return get(session, value[1])
    if _is_handle(value):
        return ElixirFunction(value, session, timeout_ms)
    if not isinstance(value, (list, tuple, dict)):
        return value
    root = [None]
    stack = [(value, root, 0)]
    while stack:
        item, parent, slot = stack.pop()
        if _is_ref(item):
            parent[slot] = get(session, item[1])
        elif _is_handle(item):
            parent[slot] = ElixirFunction(item, session, timeout_ms)
        elif isinstance(item, list):
            copy = parent[slot] = [None] * len(item)
            stack.extend((v, copy, i) for i, v in enumerate(item))
        elif isinstance(item, tuple):
            # Built as a list, frozen once filled (children are decoded after this entry).
            copy = [None] * len(item)
            stack.append((_Freeze(copy), parent, slot))
            stack.extend((v, copy, i) for i, v in enumerate(item))
        elif isinstance(item, _Freeze):
            parent[slot] = tuple(item.items)
        elif isinstance(item, dict):
            copy = parent[slot] = {}
            for k, v in item.items():
                copy[k] = None
                stack.append((v, copy, k))
        else:
            parent[slot] = item
    return root[0]


class _Freeze:
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items


# -- values out ----------------------------------------------------------------------------


def keep(session, obj):
    """A new ref to `obj` in `session`, as it crosses to Elixir."""
    number = session.new_ref_number()
    session.refs[number] = obj
    return (REF_TAG, number, type(obj).__name__)


def _plain_scalar(value):
    if value is None or isinstance(value, (bool, str)):
        return True
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def encode(session, value, as_ref=False):
    """A result for Elixir: plain data as terms, Examples and Predictions as maps of their
    fields, anything else (or everything, with `as_ref`) as a ref."""
    if as_ref:
        return keep(session, value)
    root = [None]
    stack = [(value, root, 0, 0)]
    while stack:
        item, parent, slot, depth = stack.pop()
        if isinstance(item, _Freeze):
            parent[slot] = tuple(item.items)
            continue
        if _plain_scalar(item):
            parent[slot] = item
            continue
        if isinstance(item, (dspy.Example, dspy.Prediction)):
            item = dict(item.toDict())
        if depth >= MAX_DEPTH:
            parent[slot] = keep(session, item)
        elif type(item) in (list, tuple):
            copy = [None] * len(item)
            if type(item) is tuple:
                stack.append((_Freeze(copy), parent, slot, depth))
            else:
                parent[slot] = copy
            stack.extend((v, copy, i, depth + 1) for i, v in enumerate(item))
        elif type(item) is dict and all(_plain_scalar(k) for k in item):
            copy = parent[slot] = {}
            for k, v in item.items():
                copy[k] = None
                stack.append((v, copy, k, depth + 1))
        else:
            parent[slot] = keep(session, item)
    return root[0]


# -- operations ----------------------------------------------------------------------------


def _call(session, fn, args):
    timeout_ms = args.get("fun_timeout") or CALLBACK_TIMEOUT_MS
    positional = decode(session, args.get("args") or [], timeout_ms)
    keywords = decode(session, args.get("kwargs") or {}, timeout_ms)
    if not isinstance(positional, list):
        raise _invalid("args must be a list")
    if not isinstance(keywords, dict) or not all(isinstance(k, str) for k in keywords):
        raise _invalid("kwargs must be a keyword list or a map with atom or string keys")
    if not callable(fn):
        raise _invalid(f"{type(fn).__name__} object is not callable")
    result = fn(*positional, **{str(k): v for k, v in keywords.items()})
    return encode(session, result, bool(args.get("as_ref")))


def py_call(session, args):
    target = args.get("target")
    fn = get(session, target[1]) if _is_ref(target) else resolve(target)
    return _call(session, fn, args)


def py_method(session, args):
    obj = get(session, args.get("ref"))
    return _call(session, getattr(obj, check_name(args.get("name"))), args)


def py_attr(session, args):
    obj = get(session, args.get("ref"))
    name = check_name(args.get("name"))
    try:
        value = getattr(obj, name)
    except AttributeError:
        raise _invalid(f"{type(obj).__name__} object has no attribute {quote(name)}") from None
    return encode(session, value, bool(args.get("as_ref")))


def py_set_attr(session, args):
    obj = get(session, args.get("ref"))
    setattr(obj, check_name(args.get("name")), decode(session, args.get("value"), args.get("fun_timeout") or CALLBACK_TIMEOUT_MS))
    return None


def release(session, number):
    """Drops one ref (its Elixir handle was collected)."""
    session.refs.pop(number, None)
