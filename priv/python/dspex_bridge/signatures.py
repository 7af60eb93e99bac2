"""Signatures built from data: DSPy never sees a string it could evaluate or import.

Signatures come from users and from imported exports, so they are hostile. DSPy's own
string parser resolves a type name it does not know by importing a module of that name
(`History` imports any `History.py` on `sys.path`), and pydantic evaluates a string inside
a generic (`list["__import__('os')..."]`) as a forward reference. So the text is parsed with
`ast` (which runs nothing), every name is looked up in an allowlist of real objects,
generics are applied to those objects, and DSPy gets a dict of (annotation, field): its
string parser is never used. String constants are accepted only as `Literal` values and as
the language of `dspy.Code[...]`.
"""

import ast
import functools
import re
import typing

import dspy

from .errors import BridgeError

MAX_SIGNATURE_CHARS = 10_000
MAX_FIELDS = 200
MAX_TYPE_DEPTH = 8
MAX_TYPE_ARGS = 64
MAX_LITERAL_CHARS = 1_000

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE_LANGUAGE = re.compile(r"^[A-Za-z][A-Za-z0-9_+#.-]{0,31}$")

_DSPY_TYPES = {name: getattr(dspy, name) for name in ("Image", "History", "Tool", "ToolCalls", "Code", "Audio")}

# Every name a type may use, mapped to the object it means (never resolved any other way).
TYPE_NAMES = {
    "str": str, "int": int, "float": float, "bool": bool, "bytes": bytes,
    "list": list, "dict": dict, "tuple": tuple, "None": type(None),
    **{name: getattr(typing, name) for name in ("Any", "List", "Dict", "Tuple", "Optional", "Union", "Literal")},
    **{f"typing.{name}": getattr(typing, name) for name in ("Any", "List", "Dict", "Tuple", "Optional", "Union", "Literal")},
    **_DSPY_TYPES,
    **{f"dspy.{name}": value for name, value in _DSPY_TYPES.items()},
}  # fmt: skip

# How many type arguments each generic takes: (at least, at most).
_ARITY = {list: (1, 1), typing.List: (1, 1), dict: (2, 2), typing.Dict: (2, 2), typing.Optional: (1, 1),
          tuple: (1, MAX_TYPE_ARGS), typing.Tuple: (1, MAX_TYPE_ARGS), typing.Union: (2, MAX_TYPE_ARGS)}  # fmt: skip

# Keyword arguments DSPy's modules take as control arguments rather than inputs, and field
# names they add themselves (dspy 3.4.1). A field with such a name would let an input
# (end-user data) redirect the LM, inject demos, or clash with the module's own fields.
_PREDICT = "dspy.Predict takes it as a control argument, not as an input"
RESERVED = {
    "signature": _PREDICT,
    "demos": _PREDICT,
    "config": _PREDICT,
    "lm": _PREDICT,
    "prediction": "dspy.Predict moves it into the LM's request options",
    "new_signature": "dspy.Predict refuses it as an argument",
    "completed": "DSPy's ChatAdapter uses it to mark the end of an answer",
}
RESERVED_BY_KIND = {
    # A custom module may hand its inputs to any DSPy module, ReAct included.
    "custom": {"max_iters": "dspy.ReAct takes it as a control argument"},
    "chain_of_thought": {"reasoning": "dspy.ChainOfThought adds it as its first output"},
    "react": {
        "max_iters": "dspy.ReAct takes it as a control argument",
        "trajectory": "dspy.ReAct adds it to the signature",
        "next_thought": "dspy.ReAct adds it to the signature",
        "next_tool_name": "dspy.ReAct adds it to the signature",
        "next_tool_args": "dspy.ReAct adds it to the signature",
        "reasoning": "dspy.ReAct's final step is a ChainOfThought, which adds it",
    },
}


def _invalid(message):
    return BridgeError("invalid_signature", message)


def reserved(kind):
    """The reserved field names of a module kind ("predict", ..., or ["custom", name]), each
    with the reason."""
    key = kind if isinstance(kind, str) else "custom"
    return {**RESERVED, **RESERVED_BY_KIND.get(key, {})}


def check_reserved(signature, kind):
    """Refuses a signature that uses a field name its module treats as a control argument."""
    names = reserved(kind)
    for name in list(signature.input_fields) + list(signature.output_fields):
        if name in names:
            raise _invalid(f"field {name!r} is reserved: {names[name]}")


def _check_field_name(name, where):
    if not isinstance(name, str) or not _IDENT.match(name):
        raise _invalid(f"{where}: field name {name!r} is not an identifier (ASCII letters, digits and _)")
    if name.startswith("_"):
        raise _invalid(f"{where}: field name {name!r} may not start with an underscore")


# -- types -------------------------------------------------------------------------------


class _Types:
    """Builds an annotation from the AST of a type, refusing anything not on the allowlist."""

    def __init__(self, source, field, names=TYPE_NAMES):
        self.source = source
        self.field = field
        self.names = names

    def fail(self, what):
        return _invalid(f"type of field {self.field!r}: {what}")

    def build(self, node, depth=0):
        if depth > MAX_TYPE_DEPTH:
            raise self.fail(f"nested deeper than {MAX_TYPE_DEPTH}")
        if isinstance(node, (ast.Name, ast.Attribute)):
            value = self.name(node)
            if value in _ARITY or value is typing.Literal:
                raise self.fail(f"{self.text(node)} needs type arguments in [...]")
            return value
        if isinstance(node, ast.Constant) and node.value is None:
            return type(None)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return typing.Union[self.build(node.left, depth + 1), self.build(node.right, depth + 1)]
        if isinstance(node, ast.Subscript):
            return self.subscript(node, depth)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            raise self.fail(f"a quoted type ({node.value[:40]!r}) is not allowed; write the type itself")
        raise self.fail(f"{self.text(node)!r} is not a type")

    def text(self, node):
        return ast.get_source_segment(self.source, node) or type(node).__name__

    def name(self, node):
        dotted = _dotted(node)
        # The parser folds unicode look-alikes (NFKC); only the plain ASCII spelling counts.
        if dotted is None or dotted not in self.names or self.text(node) != dotted:
            raise self.fail(
                f"{self.text(node)[:60]!r} is not allowed; use builtins (str, int, float, bool, "
                f"list, dict, tuple), typing (Any, List, Dict, Tuple, Optional, Union, Literal) "
                f"or DSPy types ({', '.join(_DSPY_TYPES)})"
            )
        return self.names[dotted]

    def subscript(self, node, depth):
        if not isinstance(node.value, (ast.Name, ast.Attribute)):
            raise self.fail(f"{self.text(node)[:60]!r} is not a type")
        base = self.name(node.value)
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if len(args) > MAX_TYPE_ARGS:
            raise self.fail(f"more than {MAX_TYPE_ARGS} type arguments")
        if base is typing.Literal:
            return typing.Literal[tuple(self.literal(a) for a in args)]
        if base is dspy.Code:
            return self.code(args)
        if base not in _ARITY:
            raise self.fail(f"{self.text(node.value)} takes no type arguments")
        if base in (tuple, typing.Tuple) and len(args) == 2 and _is_ellipsis(args[1]):
            return base[self.build(args[0], depth + 1), ...]
        low, high = _ARITY[base]
        if not low <= len(args) <= high:
            raise self.fail(f"{self.text(node.value)} takes {low if low == high else f'{low} or more'} type arguments")
        built = tuple(self.build(a, depth + 1) for a in args)
        try:
            return base[built if len(built) > 1 else built[0]]
        except TypeError as exc:
            raise self.fail(str(exc)) from None

    def literal(self, node):
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            value = self.literal(node.operand)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return -value
        elif isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, int, float, bool))):
            if isinstance(node.value, str) and len(node.value) > MAX_LITERAL_CHARS:
                raise self.fail(f"a Literal value is longer than {MAX_LITERAL_CHARS} characters")
            return node.value
        raise self.fail(f"Literal values must be strings, numbers, booleans or None, not {self.text(node)[:60]!r}")

    def code(self, args):
        if len(args) != 1 or not isinstance(args[0], ast.Constant) or not isinstance(args[0].value, str):
            raise self.fail("dspy.Code takes one language name, as in dspy.Code['python']")
        if not _CODE_LANGUAGE.match(args[0].value):
            raise self.fail(f"{args[0].value[:40]!r} is not a language name")
        return _code(args[0].value)


@functools.lru_cache(maxsize=64)
def _code(language):
    # dspy.Code[lang] makes a new class each time: one per language is enough.
    return dspy.Code[language]


def _is_ellipsis(node):
    return isinstance(node, ast.Constant) and node.value is Ellipsis


def _dotted(node):
    # "typing.List" from Attribute(Name("typing"), "List"); None for anything else.
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


# -- string signatures -------------------------------------------------------------------


def _parse_side(side, where, names=TYPE_NAMES):
    """[(name, annotation or None)] for one side of "a, b: int -> c"."""
    if side.rstrip().endswith(","):  # Python allows it in a def; a signature does not
        _explain(side, where)
    source = f"def f({side}): pass"
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        _explain(side, where)
        raise _invalid(f"signature {where} {side.strip()[:200]!r} are not valid: {exc}") from None
    function = module.body[0] if len(module.body) == 1 else None
    if not isinstance(function, ast.FunctionDef) or function.decorator_list or len(function.body) != 1:
        raise _invalid(f"signature {where} {side.strip()[:200]!r} are not a list of fields")
    args = function.args
    if args.posonlyargs or args.vararg or args.kwonlyargs or args.kwarg or args.defaults:
        raise _invalid(f"signature {where} may only list fields as name or name: type")
    fields = []
    for arg in args.args:
        raw = ast.get_source_segment(source, arg) or ""
        name = raw.partition(":")[0].strip()
        _check_field_name(name, f"signature {where}")
        if name != arg.arg:
            raise _invalid(f"signature {where}: field name {name!r} is not an identifier (ASCII letters, digits and _)")
        annotation = None if arg.annotation is None else _Types(source, name, names).build(arg.annotation)
        fields.append((name, annotation))
    return fields


def _explain(side, where):
    # A clearer message than the parser's for the usual mistakes: a bad name, an empty type.
    depth, parts, current = 0, [], []
    for ch in side:
        depth += (ch in "[(") - (ch in "])")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    for part in parts + ["".join(current)]:
        name, colon, type_text = part.partition(":")
        _check_field_name(name.strip(), f"signature {where}")
        if colon and not type_text.strip():
            raise _invalid(f"field {name.strip()!r} has an empty type")


def from_string(text):
    """A checked `dspy.Signature` from `"question, context -> answer: int"`."""
    return _make(parse(text), None, f"signature {text[:200]!r}")


def parse(text, names=TYPE_NAMES, empty_sides=False):
    """The fields `{name: (annotation, field)}` of a string signature, built as data (DSPy
    itself builds signatures with no inputs, `" -> x"`: `empty_sides`)."""
    if not isinstance(text, str) or not text.strip():
        raise _invalid("signature is empty")
    if len(text) > MAX_SIGNATURE_CHARS:
        raise _invalid(f"signature is {len(text)} characters long; the limit is {MAX_SIGNATURE_CHARS}")
    if text.count("->") != 1:
        raise _invalid(f"signature {text[:200]!r} must have exactly one '->' between inputs and outputs")
    fields = {}
    for where, side, make in (("inputs", text.split("->")[0], dspy.InputField), ("outputs", text.split("->")[1], dspy.OutputField)):
        parsed = _parse_side(side, where, names) if side.strip() else []
        if not parsed and not empty_sides:
            raise _invalid(f"signature {text[:200]!r} has no {where}")
        if len(parsed) > MAX_FIELDS:
            raise _invalid(f"signature has {len(parsed)} {where}; the limit is {MAX_FIELDS}")
        for name, annotation in parsed:
            if name in fields:
                raise _invalid(f"field {name!r} appears twice in the signature")
            # As DSPy's own parser does: an untyped input is str, marked as untyped.
            field = make(IS_TYPE_UNDEFINED=True) if annotation is None and make is dspy.InputField else make()
            fields[name] = (str if annotation is None else annotation, field)
    return fields


def install():
    """Makes DSPy's own string signatures (`dspy.Predict("q -> a")` in session code or through
    `Py`) go through `parse`: DSPy would import a module a type names, and pydantic would
    evaluate a quoted type. Types a caller hands DSPy as objects (`custom_types`, or those
    DSPy finds in the caller's frame) are allowed by name; nothing is imported or evaluated."""
    from dspy.signatures import signature as dspy_signature

    def parse_signature(text, names=None):
        extra = {k: v for k, v in (names or {}).items() if isinstance(v, type) and k not in typing.__dict__}
        try:
            return parse(text, {**TYPE_NAMES, **extra} if extra else TYPE_NAMES, empty_sides=True)
        except BridgeError as exc:
            raise ValueError(exc.message) from None

    dspy_signature._parse_signature = parse_signature


# -- structured signatures ---------------------------------------------------------------

_SCALARS = {"string": str, "integer": int, "float": float, "boolean": bool, "map": dict}
_STRUCTURE_KEYS = frozenset({"inputs", "outputs", "instructions"})


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
        if kind == "literal" and isinstance(arg, list) and 0 < len(arg) <= MAX_TYPE_ARGS:
            if all(isinstance(v, (str, int, float, bool)) and len(str(v)) <= MAX_LITERAL_CHARS for v in arg):
                return typing.Literal[tuple(str(v) if isinstance(v, str) else v for v in arg)]
    raise _invalid(
        f"field {name!r} has type {str(spec)[:100]}; use :string, :integer, :float, :boolean, :map, "
        f"{{:list, type}} or {{:literal, [values]}}"
    )


_SCALAR_NAMES = {v: k for k, v in _SCALARS.items()}


def _type_spec(annotation, name):
    # The structured form of an annotation, the inverse of field_type.
    if annotation in _SCALAR_NAMES:
        return None if annotation is str else _SCALAR_NAMES[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, typing.List) and len(args) == 1:
        return ["list", _type_spec(args[0], name) or "string"]
    if origin is typing.Literal:
        return ["literal", list(args)]
    raise _invalid(f"field {name!r} has type {annotation!r}, which an export cannot describe")


def to_structure(signature, skip=()):
    """The structured form of a signature class (for exporting a program built in Python)."""
    spec = {"inputs": [], "outputs": [], "instructions": signature.instructions}
    for kind, fields in (("inputs", signature.input_fields), ("outputs", signature.output_fields)):
        for name, field in fields.items():
            if name in skip:
                continue
            desc = (field.json_schema_extra or {}).get("desc")
            desc = None if desc in (None, f"${{{name}}}") else desc
            type_spec = _type_spec(field.annotation, name)
            spec[kind].append([name, desc] if type_spec is None else [name, desc, type_spec])
    return spec


def from_structure(spec):
    """A `dspy.Signature` from {"inputs": [[name, desc(, type)]], "outputs": [...], "instructions": str}."""
    if not isinstance(spec, dict):
        raise _invalid("a structured signature must be a map with :inputs and :outputs")
    unknown = sorted(str(k) for k in spec if k not in _STRUCTURE_KEYS)
    if unknown:
        raise _invalid(f"unknown signature keys {', '.join(unknown)}; use inputs, outputs and instructions")
    fields = {}
    for kind, make in (("inputs", dspy.InputField), ("outputs", dspy.OutputField)):
        entries = spec.get(kind)
        if not isinstance(entries, list) or not entries:
            raise _invalid(f"a structured signature needs a non-empty :{kind} list")
        if len(entries) > MAX_FIELDS:
            raise _invalid(f"signature has {len(entries)} {kind}; the limit is {MAX_FIELDS}")
        for entry in entries:
            if not isinstance(entry, (list, tuple)) or len(entry) not in (2, 3):
                raise _invalid(f"{kind}: each field must be [name, description(, type)], got {str(entry)[:100]}")
            name, desc = entry[0], entry[1]
            _check_field_name(name, kind)
            name = str(name)
            annotation = field_type(entry[2] if len(entry) == 3 else None, name)
            if name in fields:
                raise _invalid(f"field {name!r} appears twice in the signature")
            if desc is not None and not isinstance(desc, str):
                raise _invalid(f"description of field {name!r} must be a string")
            fields[name] = (annotation, make(desc=str(desc)) if desc else make())
    instructions = spec.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _invalid("instructions must be a string")
    return _make(fields, str(instructions) if instructions else None, "the structured signature")


def _make(fields, instructions, what):
    # Names every module reserves are refused before DSPy sees them (some break it).
    for name in fields:
        if name in RESERVED:
            raise _invalid(f"field {name!r} is reserved: {RESERVED[name]}")
    try:
        return dspy.Signature(fields, instructions) if instructions else dspy.Signature(fields)
    except Exception as exc:  # noqa: BLE001
        raise _invalid(f"DSPy refused {what}: {exc}") from exc


# -- shared classes ----------------------------------------------------------------------


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
