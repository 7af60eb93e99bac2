"""errors.describe, secret scrubbing, and call() never raising."""

import json

import pytest

import dspex_bridge as bridge
from dspex_bridge import errors
from dspex_bridge.errors import BridgeError
from support import SECRET, call, dummy, err, ok, real_lm


def _raised(exc):
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001
        return caught


class Outer:
    class Inner(Exception):
        pass


class BadStr(Exception):
    def __str__(self):
        raise RuntimeError("no text for you")


def test_bridge_error_keeps_its_reason_and_has_no_traceback():
    out = errors.describe(BridgeError("not_found", "no program 'x'"))
    assert out == {"reason": "not_found", "message": "no program 'x'", "python_type": None, "traceback": None}


def test_bridge_error_reasons_are_the_documented_ones():
    with pytest.raises(AssertionError):
        BridgeError("made_up", "x")


def test_builtin_exception_is_python_error_with_traceback():
    def failing_function():
        raise ValueError("bad value")

    exc = _raised_from(failing_function)
    out = errors.describe(exc)
    assert out["reason"] == "python_error"
    assert out["message"] == "bad value"
    assert out["python_type"] == "ValueError"
    assert out["traceback"].startswith("Traceback (most recent call last):")
    assert "failing_function" in out["traceback"]
    assert out["traceback"].rstrip().endswith("ValueError: bad value")


def _raised_from(fn):
    try:
        fn()
    except BaseException as caught:  # noqa: BLE001
        return caught
    raise AssertionError("did not raise")


def test_qualified_type_names():
    assert errors.describe(_raised(json.JSONDecodeError("x", "doc", 0)))["python_type"] == "json.decoder.JSONDecodeError"
    assert errors.describe(_raised(Outer.Inner("x")))["python_type"] == f"{__name__}.Outer.Inner"


def test_an_exception_never_raised_still_has_a_traceback_text():
    out = errors.describe(KeyError("k"))
    assert out["python_type"] == "KeyError"
    assert out["message"] == "'k'"
    assert "KeyError" in out["traceback"]


def test_an_exception_whose_str_raises_still_has_a_message():
    out = errors.describe(_raised(BadStr()))
    assert out["reason"] == "python_error"
    assert isinstance(out["message"], str)
    assert "BadStr object at 0x" in out["message"]
    assert out["python_type"] == f"{__name__}.BadStr"
    assert "BadStr" in out["traceback"]


def test_scrub_replaces_every_occurrence_of_every_secret():
    text = f"key={SECRET}; again {SECRET}; other=tok-9999"
    assert errors.scrub(text, [SECRET, "tok-9999"]) == "key=[REDACTED]; again [REDACTED]; other=[REDACTED]"


def test_scrub_ignores_empty_and_tiny_secrets():
    # A one-letter "secret" would shred every message.
    assert errors.scrub("a bad thing", ["", "a", None]) == "a bad thing"
    assert errors.scrub(None, [SECRET]) is None


def test_describe_scrubs_message_and_traceback():
    def leak():
        raise RuntimeError(f"401 for key {SECRET}")

    out = errors.describe(_raised_from(leak), (SECRET,))
    assert SECRET not in out["message"] and SECRET not in out["traceback"]
    assert out["message"] == "401 for key [REDACTED]"
    assert "[REDACTED]" in out["traceback"]


def test_describe_scrubs_bridge_error_messages():
    out = errors.describe(BridgeError("invalid_argument", f"bad {SECRET}"), [SECRET])
    assert out["message"] == "bad [REDACTED]"


# -- through call() -------------------------------------------------------------------------


@pytest.fixture
def keyed_session(open_session):
    """A session on a real (never called) dspy.LM whose kwargs hold an api key, with a program
    whose module is replaceable by the test."""
    session = open_session(real_lm())
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    return session


def _replace_module(monkeypatch, session, fn):
    monkeypatch.setattr(session.programs["qa"], "module", fn)


def test_secrets_are_scrubbed_from_call_errors(monkeypatch, keyed_session):
    def leaky(**inputs):
        try:
            raise ConnectionError(f"could not reach the API with api_key={SECRET}")
        except ConnectionError as inner:
            raise RuntimeError(f"LM call failed ({SECRET[:5]}...{SECRET})") from inner

    _replace_module(monkeypatch, keyed_session, leaky)
    error = err(call(keyed_session, "execute", {"id": "qa", "inputs": {"question": "?"}}), "python_error")
    assert error["python_type"] == "RuntimeError"
    assert SECRET not in error["message"]
    assert SECRET not in error["traceback"]
    assert error["message"] == "LM call failed (sk-se...[REDACTED])"
    # The chained cause is in the traceback, scrubbed too.
    assert "ConnectionError: could not reach the API with api_key=[REDACTED]" in error["traceback"]
    assert "leaky" in error["traceback"]


def test_secrets_of_a_configured_lm_are_scrubbed(monkeypatch, open_session):
    session = open_session(None)
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    ok(call(session, "configure", {"lm": real_lm(api_key="sk-other-456")}))

    def leaky(**inputs):
        raise PermissionError("bad key sk-other-456")

    _replace_module(monkeypatch, session, leaky)
    error = err(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}}), "python_error")
    assert error["message"] == "bad key [REDACTED]"
    assert "sk-other-456" not in error["traceback"]


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_call_never_raises_base_exceptions(monkeypatch, keyed_session, exc_type):
    def fatal(**inputs):
        raise exc_type(3) if exc_type is SystemExit else exc_type()

    _replace_module(monkeypatch, keyed_session, fatal)
    result = call(keyed_session, "execute", {"id": "qa", "inputs": {"question": "?"}})
    error = err(result, "python_error") if exc_type is SystemExit else _err_any_message(result)
    assert error["python_type"] == exc_type.__name__
    assert "fatal" in error["traceback"]
    # The session is still usable, and the failure was counted.
    info = ok(call(keyed_session, "info"))
    assert (info["executions"], info["failures"]) == (0, 1)


def _err_any_message(result):
    # KeyboardInterrupt() and GeneratorExit() have an empty str(); the error still has the type.
    assert result[0] is False, result
    error = result[1]
    assert error["reason"] == "python_error"
    assert isinstance(error["message"], str)
    return error


def test_system_exit_message_is_its_code(monkeypatch, keyed_session):
    def fatal(**inputs):
        raise SystemExit(3)

    _replace_module(monkeypatch, keyed_session, fatal)
    error = err(call(keyed_session, "execute", {"id": "qa", "inputs": {"question": "?"}}), "python_error")
    assert error["message"] == "3"


def test_a_program_returning_an_unrepresentable_value(monkeypatch, keyed_session):
    _replace_module(monkeypatch, keyed_session, lambda **inputs: {"answer": {1, 2}})
    error = err(call(keyed_session, "execute", {"id": "qa", "inputs": {"question": "?"}}), "python_error")
    assert error["message"] == "result['answer'] is a Python set, which has no Elixir form"
    assert ok(call(keyed_session, "info"))["failures"] == 1


def test_nan_from_a_typed_output_is_reported_not_crashed(open_session):
    session = open_session(dummy({"score": "nan"}))
    ok(call(session, "create_program", {"id": "s", "signature": "q -> score: float"}))
    error = err(call(session, "execute", {"id": "s", "inputs": {"q": "?"}}), "python_error")
    assert "result['score'] is nan" in error["message"]


@pytest.mark.parametrize(
    "op, args",
    [
        ("execute", None),
        ("execute", {}),
        ("execute", "qa"),
        ("create_program", {}),
        ("create_program", {"id": "p", "signature": {"inputs": [["q"]], "outputs": [["a", None]]}}),
        ("delete_program", {}),
        ("configure", None),
        (None, {}),
        (["not", "hashable"], {}),
    ],
)
def test_call_returns_an_error_for_garbage_args(open_session, op, args):
    session = open_session(dummy())
    try:
        result = bridge.call(session, op, args)
    except BaseException as exc:  # noqa: BLE001
        pytest.fail(f"call raised {exc!r}")
    assert result[0] is False
    assert result[1]["reason"] in errors.REASONS
    assert ok(call(session, "info"))["id"] == session.id


def test_global_call_never_raises():
    result = bridge.global_call("stats", "not a map")
    assert result[0] is False and result[1]["reason"] == "python_error"


def _lm_that_echoes_its_key(monkeypatch):
    import dspy

    def failing_lm(model, **kwargs):
        raise ValueError(f"refusing {model} with api_key={kwargs.get('api_key')}")

    monkeypatch.setattr(dspy, "LM", failing_lm)


def test_a_failing_open_never_shows_the_new_key(monkeypatch):
    _lm_that_echoes_its_key(monkeypatch)
    answer = bridge.open_session(9001, "k", real_lm(api_key="sk-open-secret-999"))
    error = err(answer, "invalid_argument")
    assert "sk-open-secret-999" not in error["message"]
    assert "[REDACTED]" in error["message"]


def test_a_failing_configure_never_shows_the_new_key(monkeypatch, open_session):
    session = open_session(real_lm(api_key="sk-old-secret-111"))
    _lm_that_echoes_its_key(monkeypatch)
    error = err(call(session, "configure", {"lm": real_lm(api_key="sk-new-secret-222")}), "invalid_argument")
    assert "sk-new-secret-222" not in error["message"]
    # The session keeps its old LM when the new one cannot be built.
    assert ok(call(session, "info"))["lm"] == "openai/gpt-4o-mini"


def test_tokens_and_passwords_count_as_secrets_too():
    from dspex_bridge import lms

    spec = {"kind": "lm", "model": "m", "kwargs": {"api_key": "a-key", "auth_token": "a-token", "password": "pw12", "temperature": "0.5"}}
    assert set(lms.secrets_of(spec)) == {"a-key", "a-token", "pw12"}
