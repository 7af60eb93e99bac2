"""Exported programs: the format `export_program` writes, and the check `import_program` makes.

An export comes back from outside (a file, a database, another tenant), so it is hostile.
DSPy's `load_state` sets every key it finds on a predictor: a `config` key redirects the
LM's endpoint, an `lm` key builds a new LM (with its own `api_base`). So the whole map is
checked against the format written here: known keys only, types checked, demos holding only
the predictor's own fields as plain values, sizes bounded. A clean state is then rebuilt
from the checked parts alone; LM settings are refused.
"""

import math

import dspy

from . import signatures
from .errors import BridgeError, quote
from .values import to_plain

# Bumped when the exported shape changes incompatibly.
FORMAT = "dspex_native/1"

KEYS = ("format", "module", "signature", "state")
PREDICTOR_KEYS = ("traces", "train", "demos", "signature", "lm")
MAX_DEMOS = 1_000
MAX_TEXT = 1_000_000
MAX_DEMO_CHARS = 10_000_000
MAX_VALUE_DEPTH = 32


def _invalid(message):
    return BridgeError("invalid_argument", f"the exported program is not valid: {message}")


def export(program):
    """The program as plain data: module kind, signature as given, DSPy state with demos."""
    state = to_plain(program.module.dump_state(json_mode=True), "state")
    # A demo keeps only its predictor's fields (a trainset may carry more), as import expects.
    module = program.module
    pairs = [(module, state)] if isinstance(module, dspy.Predict) else [(p, state.get(n)) for n, p in module.named_parameters()]
    for predictor, own in pairs:
        if isinstance(own, dict) and isinstance(own.get("demos"), list):
            keep = set(predictor.signature.fields) | {"augmented"}
            own["demos"] = [{k: v for k, v in d.items() if k in keep} if isinstance(d, dict) else d for d in own["demos"]]
    kind, spec = _kind_and_spec(program)
    return {"format": FORMAT, "module": kind, "signature": spec, "state": state}


def _kind_and_spec(program):
    # A program built in Python (put_program) exports as the module it is, when it is one
    # an import can rebuild.
    if not (isinstance(program.kind, (list, tuple)) and program.kind[0] == "ref"):
        return program.kind, program.spec
    module = program.module
    if type(module) is dspy.ChainOfThought:
        return "chain_of_thought", signatures.to_structure(module.predict.signature, skip=("reasoning",))
    if type(module) is dspy.Predict:
        return "predict", signatures.to_structure(module.signature)
    raise BridgeError(
        "invalid_argument", f"a {type(module).__name__} program cannot be exported; only Predict and ChainOfThought"
    )


def header(exported):
    """(module kind, signature spec) of an export, after checking its top-level keys."""
    if not isinstance(exported, dict):
        raise BridgeError("invalid_argument", f"not an exported program (expected a map in format {quote(FORMAT)})")
    unknown = sorted(str(k) for k in exported if k not in KEYS)
    if unknown:
        raise _invalid(f"unknown key(s) {', '.join(unknown)}; an export has {', '.join(KEYS)}")
    if exported.get("format") != FORMAT:
        raise _invalid(f"format is {quote(str(exported.get('format'))[:60])}, expected {quote(FORMAT)}")
    module = exported.get("module")
    custom = isinstance(module, (list, tuple)) and len(module) == 2 and module[0] == "custom" and isinstance(module[1], str)
    if module not in ("predict", "chain_of_thought") and not custom:
        raise _invalid(f"module {quote(str(module)[:60])} cannot be imported; use predict, chain_of_thought or [custom, name]")
    return module, exported.get("signature")


def clean_state(state, module):
    """A state for `module.load_state` built only from the checked parts of `state`."""
    if not isinstance(state, dict):
        raise _invalid("state must be a map")
    budget = [MAX_DEMO_CHARS]
    if isinstance(module, dspy.Predict):  # a predictor's state is its own, not keyed by name
        return _predictor_state(state, module, "state", budget)
    predictors = dict(module.named_parameters())
    unknown = sorted(str(k) for k in state if k not in predictors)
    if unknown:
        raise _invalid(f"state has no predictor {', '.join(unknown)} (this program has {', '.join(predictors) or 'none'})")
    clean = {}
    for name, predictor in predictors.items():
        if name not in state:
            raise _invalid(f"state lacks predictor {name}")
        clean[name] = _predictor_state(state[name], predictor, f"state.{name}", budget)
    return clean


def _predictor_state(state, predictor, where, budget):
    if not isinstance(state, dict):
        raise _invalid(f"{where} must be a map")
    unknown = sorted(str(k) for k in state if k not in PREDICTOR_KEYS)
    if unknown:
        raise _invalid(f"{where} has unknown key(s) {', '.join(unknown)}")
    if state.get("lm") is not None:
        raise _invalid(f"{where}.lm: LM settings cannot be imported; set the session's LM with configure")
    for key in ("traces", "train"):
        if state.get(key, []) != []:
            raise _invalid(f"{where}.{key} must be empty")
    fields = list(predictor.signature.fields)
    return {
        "traces": [],
        "train": [],
        "demos": _demos(state.get("demos", []), set(fields), f"{where}.demos", budget),
        "signature": _signature(state.get("signature"), len(fields), f"{where}.signature"),
        "lm": None,
    }


def _signature(sig, count, where):
    if not isinstance(sig, dict):
        raise _invalid(f"{where} must be a map with instructions and fields")
    unknown = sorted(str(k) for k in sig if k not in ("instructions", "fields"))
    if unknown or len(sig) != 2:
        raise _invalid(f"{where} must have exactly instructions and fields" + (f"; unknown key(s) {', '.join(unknown)}" if unknown else ""))
    instructions = _text(sig["instructions"], f"{where}.instructions")
    saved = sig["fields"]
    if not isinstance(saved, list) or len(saved) != count:
        raise _invalid(f"{where}.fields must list {count} fields")
    fields = []
    for n, field in enumerate(saved):
        unknown = sorted(str(k) for k in field if k not in ("prefix", "description")) if isinstance(field, dict) else []
        if not isinstance(field, dict) or unknown or len(field) != 2:
            raise _invalid(
                f"{where}.fields[{n}] must be a map with exactly prefix and description"
                + (f"; unknown key(s) {', '.join(unknown)}" if unknown else "")
            )
        fields.append({k: _text(field[k], f"{where}.fields[{n}].{k}") for k in ("prefix", "description")})
    return {"instructions": instructions, "fields": fields}


def _text(value, where):
    if not isinstance(value, str):
        raise _invalid(f"{where} must be a string")
    if len(value) > MAX_TEXT:
        raise _invalid(f"{where} is {len(value)} characters long; the limit is {MAX_TEXT}")
    return str(value)


def _demos(demos, fields, where, budget):
    if not isinstance(demos, list):
        raise _invalid(f"{where} must be a list")
    if len(demos) > MAX_DEMOS:
        raise _invalid(f"{where} has {len(demos)} demos; the limit is {MAX_DEMOS}")
    clean = []
    for n, demo in enumerate(demos):
        if not isinstance(demo, dict):
            raise _invalid(f"{where}[{n}] must be a map")
        out = {}
        for key, value in demo.items():
            if key == "augmented" and isinstance(value, bool):
                out["augmented"] = value
                continue
            if not isinstance(key, str) or key not in fields:
                raise _invalid(f"{where}[{n}] has key {quote(str(key)[:60])}, which is not a field of this predictor")
            out[str(key)] = _plain(value, f"{where}[{n}].{key}", budget)
        clean.append(out)
    return clean


def _plain(value, where, budget):
    """A copy of a demo value made only of JSON-like types, walked without recursion."""
    root = [None]
    stack = [(value, root, 0, 0)]
    while stack:
        item, parent, slot, depth = stack.pop()
        budget[0] -= 1
        if depth > MAX_VALUE_DEPTH:
            raise _invalid(f"{where} is nested deeper than {MAX_VALUE_DEPTH}")
        if item is None or isinstance(item, (bool, int)):
            copy = item
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise _invalid(f"{where} holds {quote(item)}")
            copy = item
        elif isinstance(item, str):
            budget[0] -= len(item)
            copy = str(item)
        elif isinstance(item, (list, tuple)):
            copy = [None] * len(item)
            stack.extend((v, copy, i, depth + 1) for i, v in enumerate(item))
        elif isinstance(item, dict):
            copy = {}
            for k, v in item.items():
                if not isinstance(k, str):
                    raise _invalid(f"{where} has a map key that is not a string")
                budget[0] -= len(k)
                copy[str(k)] = None
                stack.append((v, copy, str(k), depth + 1))
        else:
            raise _invalid(f"{where} holds a {type(item).__name__}")
        if budget[0] < 0:
            raise _invalid(f"the demos hold more than {MAX_DEMO_CHARS} characters and values")
        parent[slot] = copy
    return root[0]
