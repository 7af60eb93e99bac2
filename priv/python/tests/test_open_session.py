"""open_session/3 and the LM specs Elixir sends."""

import pytest

import dspex_bridge as bridge
from dspex_bridge import Atom
from support import SECRET, call, dummy, dummy_by_substring, err, ok, real_lm


def test_nil_lm_opens_a_session_without_an_lm(open_session):
    session = open_session(None, name="plain")
    info = ok(call(session, "info"))
    assert info["lm"] is None
    assert info["name"] == "plain"
    assert info["programs"] == 0


def test_open_session_returns_a_session_with_its_id_and_name():
    ok_, session = bridge.open_session(4242, "named", None)
    try:
        assert ok_ is True
        assert isinstance(session, bridge.Session)
        info = ok(call(session, "info"))
        assert info["id"] == 4242
        assert info["name"] == "named"
        assert "4242" in repr(session)
    finally:
        bridge.release(session)


def test_dummy_lm_with_a_list_answers_in_order(open_session):
    session = open_session(dummy({"answer": "first"}, {"answer": "second"}))
    assert ok(call(session, "info"))["lm"] == "dummy"
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    assert ok(call(session, "execute", {"id": "qa", "inputs": {"question": "one?"}})) == {"answer": "first"}
    assert ok(call(session, "execute", {"id": "qa", "inputs": {"question": "two?"}})) == {"answer": "second"}


def test_dummy_lm_with_a_map_answers_by_substring_of_the_prompt(open_session):
    session = open_session(
        dummy_by_substring({"France": {"answer": "Paris"}, "Spain": {"answer": "Madrid"}})
    )
    ok(call(session, "create_program", {"id": "capital", "signature": "question -> answer"}))
    ask = lambda q: ok(call(session, "execute", {"id": "capital", "inputs": {"question": q}}))  # noqa: E731
    assert ask("capital of Spain?") == {"answer": "Madrid"}
    assert ask("capital of France?") == {"answer": "Paris"}
    # A map answers the same question again (a list would be used up).
    assert ask("capital of Spain?") == {"answer": "Madrid"}


def test_dummy_answers_may_use_atom_keys(open_session):
    # Elixir atoms arrive as Atom (a str subclass); DummyLM must get plain field names.
    session = open_session({"kind": "dummy", "answers": [{Atom("answer"): "yes"}]})
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    assert ok(call(session, "execute", {"id": "qa", "inputs": {Atom("question"): "ok?"}})) == {"answer": "yes"}


def test_real_lm_spec_is_constructed_without_calling_it(open_session):
    session = open_session(real_lm())
    info = ok(call(session, "info"))
    assert info["lm"] == "openai/gpt-4o-mini"
    # The key must not show up in anything a user can print.
    assert SECRET not in repr(info)
    assert SECRET not in repr(session)
    assert SECRET not in session.label()


def test_real_lm_spec_without_kwargs(open_session):
    session = open_session({"kind": "lm", "model": "openai/gpt-4o-mini", "kwargs": None})
    assert ok(call(session, "info"))["lm"] == "openai/gpt-4o-mini"


@pytest.mark.parametrize(
    "spec, words",
    [
        ("openai/gpt-4o-mini", "lm must be nil"),
        (42, "lm must be nil"),
        ({"kind": "nope"}, "unknown lm kind"),
        ({}, "unknown lm kind"),
        ({"kind": "dummy"}, "answers must be a list or a map"),
        ({"kind": "dummy", "answers": "answer"}, "answers must be a list or a map"),
        ({"kind": "dummy", "answers": [{"answer": "a"}, "b"]}, "every answer must be a map"),
        ({"kind": "dummy", "answers": {"France": "Paris"}}, "every value must be a map"),
        ({"kind": "lm"}, "model must be a non-empty string"),
        ({"kind": "lm", "model": ""}, "model must be a non-empty string"),
        ({"kind": "lm", "model": "   "}, "model must be a non-empty string"),
        ({"kind": "lm", "model": 7}, "model must be a non-empty string"),
        # dspy.LM itself refuses these options.
        ({"kind": "lm", "model": "openai/o1", "kwargs": {"temperature": 0.3}}, "refused its options"),
    ],
)
def test_bad_lm_specs_are_invalid_argument(spec, words):
    result = bridge.open_session(1, None, spec)
    error = err(result, "invalid_argument")
    assert words in error["message"]
    assert error["python_type"] is None and error["traceback"] is None
