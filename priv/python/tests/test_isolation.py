"""Sessions are isolated: same program id, different LMs, from several threads at once."""

import sys
import threading

import dspy
import pytest

from support import call, dummy, ok

ROUNDS = 30


@pytest.fixture(autouse=True)
def frequent_thread_switches():
    # Switch threads every 10 µs so the two threads' executions really interleave.
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def test_same_program_id_in_two_sessions_uses_each_sessions_lm(open_session):
    a = open_session(dummy({"answer": "from A"}), name="a")
    b = open_session(dummy({"answer": "from B"}), name="b")
    for session in (a, b):
        ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    assert ok(call(b, "execute", {"id": "qa", "inputs": {"question": "?"}})) == {"answer": "from B"}
    assert ok(call(a, "execute", {"id": "qa", "inputs": {"question": "?"}})) == {"answer": "from A"}
    # Deleting one session's program leaves the other's alone.
    ok(call(a, "delete_program", {"id": "qa"}))
    assert ok(call(b, "list_programs")) == ["qa"]


def test_sessions_do_not_touch_the_global_dspy_lm(open_session):
    before = dspy.settings.lm
    session = open_session(dummy({"answer": "x"}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    ok(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}}))
    assert dspy.settings.lm is before


def _run_in_threads(jobs):
    barrier = threading.Barrier(len(jobs))
    results = [None] * len(jobs)
    errors = []

    def runner(i, job):
        try:
            barrier.wait(timeout=10)
            results[i] = job()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    return results


def test_two_sessions_in_two_threads_at_once(open_session):
    a = open_session(dummy(*[{"answer": f"A{i}"} for i in range(ROUNDS)]))
    b = open_session(dummy(*[{"answer": f"B{i}"} for i in range(ROUNDS)]))
    for session in (a, b):
        ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))

    def job(session):
        return lambda: [
            ok(call(session, "execute", {"id": "qa", "inputs": {"question": f"q{i}"}}))["answer"]
            for i in range(ROUNDS)
        ]

    got_a, got_b = _run_in_threads([job(a), job(b)])
    assert got_a == [f"A{i}" for i in range(ROUNDS)]
    assert got_b == [f"B{i}" for i in range(ROUNDS)]
    for session in (a, b):
        info = ok(call(session, "info"))
        assert (info["executions"], info["failures"]) == (ROUNDS, 0)


def test_one_session_from_two_threads_counts_every_execution(open_session):
    session = open_session(dummy_by_question())
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))

    def job(tag):
        return lambda: [
            ok(call(session, "execute", {"id": "qa", "inputs": {"question": f"{tag}-{i}"}}))["answer"]
            for i in range(ROUNDS)
        ]

    got_x, got_y = _run_in_threads([job("xx"), job("yy")])
    assert got_x == ["X"] * ROUNDS and got_y == ["Y"] * ROUNDS
    assert ok(call(session, "info"))["executions"] == 2 * ROUNDS


def dummy_by_question():
    return {"kind": "dummy", "answers": {"xx-": {"answer": "X"}, "yy-": {"answer": "Y"}}}
