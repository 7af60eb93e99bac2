"""Weak references: released sessions and their programs really go away; global_call."""

import gc
import platform
import sys

import dspy
import pytest

import dspex_bridge as bridge
from dspy.clients import base_lm
from support import call, dummy, err, ok


def _open(lm_spec=None):
    ok_, session = bridge.open_session(999, "lifecycle", lm_spec)
    assert ok_, session
    return session


def _stats():
    gc.collect()
    return bridge.stats()


def test_stats_count_sessions_and_programs():
    before = _stats()
    session = _open(dummy())
    for pid in ["a", "b", "c"]:
        ok(call(session, "create_program", {"id": pid, "signature": "q -> a"}))
    assert _stats() == {"sessions": before["sessions"] + 1, "programs": before["programs"] + 3, "refs": before["refs"]}
    bridge.release(session)
    del session
    assert _stats() == before


def test_release_drops_programs_even_while_the_session_object_lives():
    # Rust may hold the session a little longer than the BEAM handle; release must free its programs.
    before = _stats()
    session = _open(dummy({"answer": "x"}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    ok(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}}))
    bridge.release(session)
    after = _stats()
    assert after["programs"] == before["programs"]
    assert after["sessions"] == before["sessions"] + 1
    assert session.lm.lm is None
    del session
    assert _stats() == before


def test_replaced_deleted_and_reset_programs_are_freed():
    before = _stats()
    session = _open(dummy())
    ok(call(session, "create_program", {"id": "a", "signature": "q -> a"}))
    ok(call(session, "create_program", {"id": "a", "signature": "q -> b", "replace": True}))
    assert _stats()["programs"] == before["programs"] + 1
    ok(call(session, "create_program", {"id": "b", "signature": "q -> a"}))
    ok(call(session, "delete_program", {"id": "a"}))
    assert _stats()["programs"] == before["programs"] + 1
    ok(call(session, "reset"))
    assert _stats()["programs"] == before["programs"]
    bridge.release(session)
    del session
    assert _stats() == before


@pytest.mark.parametrize("module", ["predict", "chain_of_thought"])
def test_executions_leave_no_module_alive(module):
    # DSPy's global trace (dspy.settings.trace) and global LM history would keep every
    # executed module, and every prompt, alive across sessions.
    answers = [{"reasoning": "r", "answer": str(i)} for i in range(5)]
    trace_before = list(dspy.settings.trace or [])
    before = _stats()
    session = _open(dummy(*answers))
    ok(call(session, "create_program", {"id": "qa", "module": module, "signature": "question -> answer"}))
    for _ in range(3):
        ok(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}}))

    assert list(dspy.settings.trace or []) == trace_before
    assert len(base_lm.GLOBAL_HISTORY) == 0

    # The session (and its LM with its own history) stays; the deleted program must go.
    ok(call(session, "delete_program", {"id": "qa"}))
    assert _stats()["programs"] == before["programs"]
    bridge.release(session)
    del session
    assert _stats() == before


def test_failed_executions_leave_no_module_alive():
    before = _stats()
    session = _open(dummy({"wrong": "x"}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    err(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}}), "python_error")
    ok(call(session, "delete_program", {"id": "qa"}))
    assert _stats()["programs"] == before["programs"]
    bridge.release(session)
    del session
    assert _stats() == before


def test_a_dropped_session_is_collected_without_release():
    before = _stats()
    session = _open(dummy({"answer": "x"}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    ok(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}}))
    del session
    assert _stats() == before


def test_stats_through_global_call():
    before = ok(bridge.global_call("stats", {"gc": True}))
    session = _open(dummy())
    ok(call(session, "create_program", {"id": "a", "signature": "q -> a"}))
    assert ok(bridge.global_call("stats", None)) == {
        "sessions": before["sessions"] + 1,
        "programs": before["programs"] + 1,
        "refs": before["refs"],
    }
    bridge.release(session)
    del session
    assert ok(bridge.global_call("stats", {"gc": True})) == before


@pytest.mark.parametrize("payload", [None, 1, "text", [1, (2, 3)], {"k": [None]}])
def test_ping_echoes_its_argument(payload):
    assert bridge.global_call("ping", payload) == (True, payload)


def test_ping_returns_the_same_object():
    payload = {"a": [1, 2]}
    assert bridge.global_call("ping", payload)[1] is payload


@pytest.mark.parametrize("op", ["pong", "call", "", None])
def test_unknown_global_op(op):
    error = err(bridge.global_call(op, {}), "invalid_argument")
    assert "unknown operation" in error["message"]


def test_environment():
    env = bridge.environment()
    assert env == {"prefix": sys.prefix, "version": platform.python_version(), "dspy": dspy.__version__}


def test_warm_imports_the_lm_client_stack():
    assert bridge.warm() is None
    assert "litellm" in sys.modules


def test_history_per_session_is_bounded(open_session):
    from dspex_bridge import scope as session_module

    old = session_module.HISTORY_SIZE
    session_module.HISTORY_SIZE = 5
    try:
        s = open_session(dummy(*[{"answer": "x"}] * 12))
        ok(call(s, "create_program", {"id": "p", "signature": "q -> answer"}))
        for n in range(12):
            ok(call(s, "execute", {"id": "p", "inputs": {"q": str(n)}}))
        assert len(s.lm.lm.history) == 5
        assert len(s.programs["p"].module.history) == 5
    finally:
        session_module.HISTORY_SIZE = old
