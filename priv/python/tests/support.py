"""Small helpers shared by the tests."""

import dspex_bridge as bridge

SECRET = "sk-secret123"


def dummy(*answers):
    """An lm_spec for a DummyLM answering each call with the next map."""
    return {"kind": "dummy", "answers": list(answers)}


def dummy_by_substring(mapping):
    """An lm_spec for a DummyLM answering by a substring of the prompt's last message."""
    return {"kind": "dummy", "answers": dict(mapping)}


def real_lm(api_key=SECRET, model="openai/gpt-4o-mini"):
    """A real dspy.LM spec; tests only construct it, never call it."""
    return {"kind": "lm", "model": model, "kwargs": {"api_key": api_key}}


def ok(result):
    assert isinstance(result, tuple) and len(result) == 2, result
    assert result[0] is True, result
    return result[1]


def err(result, reason):
    assert isinstance(result, tuple) and len(result) == 2, result
    assert result[0] is False, result
    error = result[1]
    assert set(error) == {"reason", "message", "python_type", "traceback"}, error
    assert error["reason"] == reason, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


def call(session, op, args=None):
    return bridge.call(session, op, {} if args is None else args)
