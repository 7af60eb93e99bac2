"""Each LM call of a session's job is reported to the job's caller (observe.py), also from
threads the job starts, and only while the Elixir side asks for it."""

import dspy
from support import dummy_by_substring, ok

import dspex_bridge as bridge
from dspex_bridge import hooks

PARALLEL = '''
import dspy

class Fan(dspy.Module):
    def __init__(self):
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question):
        calls = [(self.predict, {"question": f"{question} {n}"}) for n in range(3)]
        return dspy.Parallel(num_threads=3)(calls)[0]
'''


def _reports(monkeypatch, wanted=True):
    sent = []
    monkeypatch.setattr(hooks, "lm_events", lambda: wanted)
    monkeypatch.setattr(hooks, "notify_elixir", lambda payload, caller=None: sent.append(payload) or True)
    return sent


def test_an_lm_call_over_http_reports_model_tokens_and_duration(open_session, server, monkeypatch):
    http = server("Paris")
    s = open_session(http.lm("sk-a", cache=False))
    ok(bridge.call(s, "create_program", {"id": "p", "signature": "question -> answer"}))
    sent = _reports(monkeypatch)
    assert ok(bridge.call(s, "execute", {"id": "p", "inputs": {"question": "?"}})) == {"answer": "Paris"}
    [report] = [p for p in sent if p["kind"] == "lm"]
    assert report["model"] == "openai/test-model"
    assert (report["prompt_tokens"], report["completion_tokens"], report["total_tokens"]) == (1, 1, 2)
    assert report["duration_ms"] > 0


def test_calls_on_threads_the_job_started_are_reported_too(open_session, monkeypatch):
    s = open_session(dummy_by_substring({"": {"answer": "x"}}))
    ok(bridge.call(s, "load_module", {"name": "fan", "source": PARALLEL}))
    ok(bridge.call(s, "create_program", {"id": "f", "module": ["custom", "Fan"]}))
    sent = _reports(monkeypatch)
    ok(bridge.call(s, "execute", {"id": "f", "inputs": {"question": "?"}}))
    reports = [p for p in sent if p["kind"] == "lm"]
    assert len(reports) == 3
    assert {r["model"] for r in reports} == {s.lm.lm.model}


def test_nothing_is_reported_unless_asked(open_session, monkeypatch):
    s = open_session(dummy_by_substring({"": {"answer": "x"}}))
    ok(bridge.call(s, "create_program", {"id": "p", "signature": "question -> answer"}))
    sent = _reports(monkeypatch, wanted=False)
    ok(bridge.call(s, "execute", {"id": "p", "inputs": {"question": "?"}}))
    assert sent == []


def test_lm_calls_are_timed_once_however_often_install_runs():
    from dspex_bridge import observe

    before = dspy.clients.base_lm.BaseLM.__call__
    observe.install()
    assert dspy.clients.base_lm.BaseLM.__call__ is before
