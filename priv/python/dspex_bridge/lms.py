"""Language models from Elixir's `lm_spec`.

Elixir normalises every spec to one of:
  None
  {"kind": "dummy", "answers": [ {...}, ... ] | { "substring": {...} }}
  {"kind": "lm", "model": "openai/gpt-4o-mini", "kwargs": {...}}   # kwargs go to dspy.LM

except `cache`, which names where the LM's answers are cached (see `cache.py`).
"""

import dspy
from dspy.utils import DummyLM

from . import cache
from .errors import BridgeError, quote


class LMConfig:
    """A session's LM, its display name, and the secrets to keep out of every message."""

    __slots__ = ("lm", "model", "secrets")

    def __init__(self, lm=None, model=None, secrets=()):
        self.lm = lm
        self.model = model
        self.secrets = tuple(secrets)


def build(spec):
    if spec is None:
        return LMConfig()
    if not isinstance(spec, dict):
        raise BridgeError("invalid_argument", "lm must be nil, a model string, {model, opts} or {:dummy, answers}")
    kind = spec.get("kind")
    if kind == "dummy":
        answers = spec.get("answers")
        if isinstance(answers, list):
            if not all(isinstance(a, dict) for a in answers):
                raise BridgeError("invalid_argument", "{:dummy, answers}: every answer must be a map of output fields")
        elif isinstance(answers, dict):
            if not all(isinstance(v, dict) for v in answers.values()):
                raise BridgeError("invalid_argument", "{:dummy, answers}: every value must be a map of output fields")
        else:
            raise BridgeError("invalid_argument", "{:dummy, answers}: answers must be a list or a map")
        return LMConfig(_dummy(_plain_keys(answers)), "dummy")
    if kind == "lm":
        model = spec.get("model")
        if not isinstance(model, str) or not model.strip():
            raise BridgeError("invalid_argument", "lm: the model must be a non-empty string like \"openai/gpt-4o-mini\"")
        kwargs = {str(k): v for k, v in (spec.get("kwargs") or {}).items()}
        policy = cache.policy(kwargs.pop("cache", True))
        secrets = secrets_of(spec)
        try:
            lm = dspy.LM(model, cache=bool(policy), **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise BridgeError("invalid_argument", f"dspy.LM({quote(model)}) refused its options: {exc}") from exc
        setattr(lm, cache.POLICY_ATTR, policy)
        return LMConfig(lm, model, secrets)
    raise BridgeError("invalid_argument", f"unknown lm kind {quote(kind)}")


def from_object(lm):
    """The LMConfig of an LM that session code passed to `dspy.configure(lm=...)`."""
    if lm is None:
        return LMConfig()
    options = getattr(lm, "kwargs", None)
    options = options if isinstance(options, dict) else {}
    return LMConfig(lm, str(getattr(lm, "model", type(lm).__name__)), secrets_of({"kwargs": options}))


class _Scripted:
    """A DummyLM's list of answers: used up, it says so (DSPy would answer "No more
    responses" as if it were the LM's text)."""

    def __init__(self, answers):
        self._answers = iter(answers)
        self._count = len(answers)

    def __iter__(self):
        return self

    def __next__(self):
        for answer in self._answers:
            return answer
        raise RuntimeError(f"DummyLM: all {self._count} scripted answers were used; give more, or a map")


class _NoMatch(dict):
    """The last entry of a DummyLM map: reached when no key occurs in the prompt."""

    def items(self):
        raise RuntimeError("DummyLM: no key of the answers map occurs in the prompt")


def _dummy(answers):
    lm = DummyLM(answers)
    if isinstance(answers, list):
        lm.answers = _Scripted(answers)
    else:
        # The most specific (longest) key first; "" (any prompt) last.
        ordered = dict(sorted(answers.items(), key=lambda kv: -len(kv[0])))
        ordered.setdefault("", _NoMatch())
        lm.answers = ordered
    return lm


_SECRET_WORDS = ("key", "token", "secret", "password")


def secrets_of(spec):
    """The option values of an LM spec that must never appear in a message."""
    if not isinstance(spec, dict) or not isinstance(spec.get("kwargs"), dict):
        return ()
    return tuple(
        v
        for k, v in spec["kwargs"].items()
        if isinstance(k, str) and isinstance(v, str) and any(w in k.lower() for w in _SECRET_WORDS)
    )


def _plain_keys(value):
    # Atom keys are str subclasses; DummyLM wants plain str field names.
    if isinstance(value, dict):
        return {str(k) if isinstance(k, str) else k: _plain_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_keys(v) for v in value]
    return value


ADAPTERS = {"chat": "ChatAdapter", "json": "JSONAdapter", "xml": "XMLAdapter", "two_step": "TwoStepAdapter"}


def adapter(name, lm_config):
    """A DSPy adapter from its Elixir name; None for nil (DSPy's default, ChatAdapter)."""
    if name is None:
        return None
    if name not in ADAPTERS:
        raise BridgeError("invalid_argument", f"adapter {quote(name)}: use :chat, :json, :xml or :two_step")
    cls = getattr(dspy, ADAPTERS[name])
    if name == "two_step":
        # Its second step extracts the fields with an LM: the session's.
        if lm_config.lm is None:
            raise BridgeError("no_lm", "the :two_step adapter needs an LM to extract fields with; set :lm first")
        return cls(extraction_model=lm_config.lm)
    return cls()
