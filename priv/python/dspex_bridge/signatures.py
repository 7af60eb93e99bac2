"""Building DSPy signatures from what Elixir sends, checked before DSPy sees them.

DSPy's string parser evaluates type annotations and imports any module a type names
(`"q -> a: this"` prints the Zen of Python). Signatures often come from users, so every
name used in a type must be on an allowlist.
"""

import ast
import functools
import re
import typing

import dspy

from .errors import BridgeError

MAX_SIGNATURE_CHARS = 10_000
MAX_FIELDS = 200

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")

ALLOWED_TYPE_NAMES = frozenset(
    {
        "str", "int", "float", "bool", "list", "dict", "tuple", "bytes", "None",
        "Any", "List", "Dict", "Tuple", "Optional", "Union", "Literal",
        "typing.Any", "typing.List", "typing.Dict", "typing.Tuple", "typing.Optional",
        "typing.Union", "typing.Literal",
        "dspy.Image", "dspy.History", "dspy.Tool", "dspy.ToolCalls", "dspy.Code",
        "Image", "History", "Tool", "ToolCalls",
    }
)


def _invalid(message):
    return BridgeError("invalid_signature", message)


def _check_field_name(name, where):
    if not isinstance(name, str) or not _IDENT.match(name):
        raise _invalid(f"{where}: field name {name!r} is not an identifier")
    if name.startswith("_"):
        raise _invalid(f"{where}: field name {name!r} may not start with an underscore")


def _check_type(type_text, field):
    stripped = _QUOTED.sub("", type_text)
    for name in _TYPE_NAME.findall(stripped):
        if name not in ALLOWED_TYPE_NAMES:
            raise _invalid(
                f"type {name!r} of field {field!r} is not allowed; "
                f"use builtins (str, int, float, bool, list, dict), typing or DSPy types"
            )


def _dotted(node):
    # "typing.List" from Attribute(Name("typing"), "List"); None for anything else.
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _annotation_names(node):
    # Every name or dotted name an annotation uses, as DSPy's _parse_type_node resolves them.
    if isinstance(node, (ast.Name, ast.Attribute)):
        yield _dotted(node) or ast.unparse(node)
        return
    for child in ast.iter_child_nodes(node):
        yield from _annotation_names(child)


def _check_side(side, where):
    # The text checks cannot follow Python's quoting ("\"", triple quotes) or brackets inside
    # strings, so also check the names in the very AST DSPy will evaluate.
    try:
        args = ast.parse(f"def f({side}): pass").body[0].args
    except (SyntaxError, ValueError) as exc:
        raise _invalid(f"signature {where} {side.strip()!r} are not valid: {exc}") from None
    for arg in args.args:
        if arg.annotation is not None:
            for name in _annotation_names(arg.annotation):
                if name not in ALLOWED_TYPE_NAMES:
                    raise _invalid(f"type {name!r} of field {arg.arg!r} is not allowed")


def _split_fields(side):
    # Split on commas outside brackets: "a, b: dict[str, int]" has two fields.
    fields, depth, current = [], 0, []
    for ch in side:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return [f.strip() for f in fields]


def from_string(text):
    """A checked `dspy.Signature` from `"question, context -> answer: int"`."""
    if not isinstance(text, str) or not text.strip():
        raise _invalid("signature is empty")
    if len(text) > MAX_SIGNATURE_CHARS:
        raise _invalid(f"signature is {len(text)} characters long; the limit is {MAX_SIGNATURE_CHARS}")
    if text.count("->") != 1:
        raise _invalid(f"signature {text!r} must have exactly one '->' between inputs and outputs")
    inputs, outputs = text.split("->")
    seen = set()
    for where, side in (("inputs", inputs), ("outputs", outputs)):
        parts = _split_fields(side)
        if parts == [""]:
            raise _invalid(f"signature {text!r} has no {where}")
        if len(parts) > MAX_FIELDS:
            raise _invalid(f"signature has {len(parts)} {where}; the limit is {MAX_FIELDS}")
        for part in parts:
            name, _, type_text = part.partition(":")
            name = name.strip()
            _check_field_name(name, f"signature {where}")
            if name in seen:
                raise _invalid(f"field {name!r} appears twice in the signature")
            seen.add(name)
            if type_text.strip():
                _check_type(type_text, name)
            elif ":" in part:
                raise _invalid(f"field {name!r} has an empty type")
        _check_side(side, where)
    try:
        return dspy.Signature(text)
    except Exception as exc:  # noqa: BLE001
        raise _invalid(f"DSPy refused signature {text!r}: {exc}") from exc


_SCALARS = {"string": str, "integer": int, "float": float, "boolean": bool, "map": dict}


def field_type(spec, name):
    """A Python annotation from Elixir's field type: "string", "integer", "float",
    "boolean", "map" (a JSON object), ["list", type] or ["literal", [values]]."""
    if spec is None:
        return str
    if isinstance(spec, str) and spec in _SCALARS:
        return _SCALARS[spec]
    if isinstance(spec, (list, tuple)) and len(spec) == 2:
        kind, arg = spec
        if kind == "list":
            return list[field_type(arg, name)]
        if kind == "literal" and isinstance(arg, list) and arg:
            if all(isinstance(v, (str, int, float, bool)) for v in arg):
                return typing.Literal[tuple(str(v) if isinstance(v, str) else v for v in arg)]
    raise _invalid(
        f"field {name!r} has type {spec!r}; use :string, :integer, :float, :boolean, :map, "
        f"{{:list, type}} or {{:literal, [values]}}"
    )


def from_structure(spec):
    """A `dspy.Signature` from {"inputs": [[name, desc]], "outputs": [...], "instructions": str}."""
    if not isinstance(spec, dict):
        raise _invalid("a structured signature must be a map with :inputs and :outputs")
    fields = {}
    for kind, make in (("inputs", dspy.InputField), ("outputs", dspy.OutputField)):
        entries = spec.get(kind)
        if not isinstance(entries, list) or not entries:
            raise _invalid(f"a structured signature needs a non-empty :{kind} list")
        if len(entries) > MAX_FIELDS:
            raise _invalid(f"signature has {len(entries)} {kind}; the limit is {MAX_FIELDS}")
        for entry in entries:
            if not isinstance(entry, (list, tuple)) or len(entry) not in (2, 3):
                raise _invalid(f"{kind}: each field must be [name, description(, type)], got {entry!r}")
            name, desc = entry[0], entry[1]
            annotation = field_type(entry[2] if len(entry) == 3 else None, name)
            _check_field_name(name, kind)
            if name in fields:
                raise _invalid(f"field {name!r} appears twice in the signature")
            if desc is not None and not isinstance(desc, str):
                raise _invalid(f"description of field {name!r} must be a string")
            fields[name] = (annotation, make(desc=desc) if desc else make())
    instructions = spec.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _invalid("instructions must be a string")
    try:
        return dspy.Signature(fields, instructions) if instructions else dspy.Signature(fields)
    except Exception as exc:  # noqa: BLE001
        raise _invalid(f"DSPy refused the structured signature: {exc}") from exc


def build(spec):
    """A checked signature class, built once per distinct spec and shared.

    Building one costs ~0.6 ms (DSPy makes a pydantic model class); programs never mutate
    their signature class (changes such as new instructions make a new class), so sessions
    can share it."""
    try:
        key = _freeze(spec)
    except TypeError:
        key = None
    return _build(spec) if key is None else _cached(key)


def _build(spec):
    return from_string(spec) if isinstance(spec, str) else from_structure(spec)


@functools.lru_cache(maxsize=1024)
def _cached(key):
    return _build(_thaw(key))


def _freeze(value):
    """A hashable, type-preserving key for a spec (dicts and lists become tagged tuples)."""
    if isinstance(value, dict):
        return ("d", tuple((_freeze(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("l" if isinstance(value, list) else "t", tuple(_freeze(v) for v in value))
    if value is None or isinstance(value, (str, int, float, bool)):
        return ("s", type(value).__name__, value)
    raise TypeError(f"unhashable spec part {type(value).__name__}")


def _thaw(key):
    tag = key[0]
    if tag == "d":
        return {_thaw(k): _thaw(v) for k, v in key[1]}
    if tag == "l":
        return [_thaw(v) for v in key[1]]
    if tag == "t":
        return tuple(_thaw(v) for v in key[1])
    return key[2]
