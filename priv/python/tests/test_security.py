"""Session isolation against hostile input: reserved fields, tampered exports, per-session
dspy.configure and LM caches (against real OpenAI-compatible servers on 127.0.0.1)."""

import json
import threading

import dspy
import pytest
from support import dummy_by_substring, err, ok

import dspex_bridge as bridge
from dspex_bridge import signatures


def ask(session, question="What is 2 + 2?"):
    if "p" not in ok(bridge.call(session, "list_programs", {})):
        ok(bridge.call(session, "create_program", {"id": "p", "signature": "question -> answer"}))
    return ok(bridge.call(session, "execute", {"id": "p", "inputs": {"question": question}}))["answer"]


# -- LM caches -----------------------------------------------------------------------------


def test_sessions_with_different_servers_never_share_answers(open_session, server):
    a, b = server("from a"), server("from b")
    sa, sb = open_session(a.lm("sk-a")), open_session(b.lm("sk-b"))
    assert (ask(sa), ask(sb)) == ("from a", "from b")
    assert (len(a.requests), len(b.requests)) == (1, 1)


def test_a_session_caches_its_own_answers_by_default(open_session, server):
    a = server("cached")
    s = open_session(a.lm("sk-a"))
    assert ask(s) == ask(s) == "cached"
    assert len(a.requests) == 1
    # ...but another session with the same server and key asks again.
    assert ask(open_session(a.lm("sk-a"))) == "cached"
    assert len(a.requests) == 2


def test_cache_false_asks_every_time(open_session, server):
    a = server("fresh")
    s = open_session(a.lm("sk-a", cache=False))
    ask(s), ask(s)
    assert len(a.requests) == 2


def test_a_shared_cache_is_keyed_by_credentials(open_session, server):
    a = server("shared")
    ask(open_session(a.lm("sk-1", cache=bridge.Atom("shared"))))
    ask(open_session(a.lm("sk-1", cache=bridge.Atom("shared"))))
    assert len(a.requests) == 1
    ask(open_session(a.lm("sk-2", cache=bridge.Atom("shared"))))
    assert len(a.requests) == 2


def test_a_disk_cache_lives_where_the_user_names_it(open_session, server, tmp_path):
    a = server("on disk")
    spec = a.lm("sk-a", cache=(bridge.Atom("disk"), str(tmp_path / "c")))
    assert ask(open_session(spec)) == ask(open_session(spec)) == "on disk"
    assert len(a.requests) == 1
    assert any((tmp_path / "c").iterdir())


@pytest.mark.parametrize("value", ["yes", 3, (bridge.Atom("disk"), 7), (bridge.Atom("ram"), "/tmp")])
def test_a_bad_cache_option_is_refused(open_session, value):
    ok_, error = bridge.open_session(99, None, {"kind": "lm", "model": "openai/x", "kwargs": {"cache": value}})
    assert ok_ is False and error["reason"] == "invalid_argument" and "cache" in error["message"]


# -- inputs and exports that would steer DSPy ------------------------------------------------


@pytest.mark.parametrize("kind", ["predict", "chain_of_thought", "react"])
def test_every_reserved_name_is_refused_as_input_and_output(open_session, kind):
    s = open_session()
    for name in signatures.reserved(kind):
        for sig in (f"question, {name} -> answer", f"question -> answer, {name}"):
            args = {"id": "p", "signature": sig, "module": kind, "tools": [{"key": "k", "name": "t"}]}
            error = err(bridge.call(s, "create_program", args), "invalid_signature")
            assert f"field {name!r} is reserved" in error["message"]


@pytest.mark.parametrize("name", ["config", "lm", "demos", "max_iters"])
def test_a_reserved_input_is_refused_at_execute_time(open_session, name):
    s = open_session(dummy_by_substring({"": {"answer": "x"}}))
    source = "import dspy\nclass Free(dspy.Module):\n    def forward(self, **kw):\n        return dspy.Prediction(**kw)\n"
    ok(bridge.call(s, "load_module", {"name": "m", "source": source}))
    ok(bridge.call(s, "create_program", {"id": "f", "module": ["custom", "Free"]}))
    error = err(bridge.call(s, "execute", {"id": "f", "inputs": {name: {"api_base": "http://evil"}}}), "invalid_argument")
    assert name in error["message"] and "reserved" in error["message"]


def exported(open_session):
    s = open_session(dummy_by_substring({"": {"answer": "x"}}))
    ok(bridge.call(s, "create_program", {"id": "p", "signature": "question -> answer", "module": "chain_of_thought"}))
    trainset = [{"question": "q1", "answer": "a1"}]
    ok(bridge.call(s, "compile", {"id": "p", "trainset": trainset, "optimizer": "labeled_few_shot"}))
    return ok(bridge.call(s, "export_program", {"id": "p"}))


@pytest.mark.parametrize(
    "tamper, words",
    [
        (lambda e: e.update(extra=1), "unknown key(s) extra"),
        (lambda e: e["state"]["predict"].update(config={"api_base": "http://evil"}), "unknown key(s) config"),
        (lambda e: e["state"]["predict"].update(lm={"model": "openai/x", "api_base": "http://evil"}), "predict.lm"),
        (lambda e: e["state"].update(other={}), "no predictor other"),
        (lambda e: e["state"]["predict"].update(demos="x"), "demos must be a list"),
        (lambda e: e["state"]["predict"]["demos"][0].update(config=1), "not a field"),
        (lambda e: e["state"]["predict"]["demos"][0].update(answer=["x" * 5_000_000] * 3), "the demos hold more"),
        (lambda e: e["state"]["predict"]["signature"].update(instructions=7), "instructions must be a string"),
        (lambda e: e["state"]["predict"]["signature"]["fields"].pop(), "must list 3 fields"),
        (lambda e: e.update(module="react"), "cannot be imported"),
        (lambda e: e.update(format="dspex_native/0"), "format"),
        (lambda e: e.update(signature="q -> a: list['__import__(\"os\")']"), "quoted type"),
    ],
)
def test_a_tampered_export_is_refused_naming_the_key(open_session, tamper, words):
    export = exported(open_session)
    target = open_session()
    tamper(export)
    result = bridge.call(target, "import_program", {"id": "q", "exported": export})
    assert result[0] is False and words in result[1]["message"], result
    assert ok(bridge.call(target, "list_programs", {})) == []


def test_an_honest_export_round_trips_with_its_demos(open_session):
    export = json.loads(json.dumps(exported(open_session)))
    target = open_session(dummy_by_substring({"": {"reasoning": "r", "answer": "y"}}))
    ok(bridge.call(target, "import_program", {"id": "q", "exported": export}))
    assert target.programs["q"].module.predict.demos == [{"question": "q1", "answer": "a1"}]
    assert ok(bridge.call(target, "execute", {"id": "q", "inputs": {"question": "?"}}))["answer"] == "y"


# -- dspy.configure from session code --------------------------------------------------------

CONFIGURING = """
import dspy

SEEN = []

class Seen(dspy.utils.callback.BaseCallback):
    def on_lm_start(self, call_id, instance, inputs):
        SEEN.append(inputs)

class Configures(dspy.Module):
    def __init__(self):
        super().__init__()
        self.p = dspy.Predict("question -> answer")

    def forward(self, question):
        dspy.configure(callbacks=[Seen()])
        return self.p(question=question)
"""


def test_dspy_configure_in_session_code_applies_to_that_session_only(open_session):
    a = open_session(dummy_by_substring({"": {"answer": "a"}}))
    b = open_session(dummy_by_substring({"": {"answer": "b"}}))
    ok(bridge.call(a, "load_module", {"name": "m", "source": CONFIGURING}))
    ok(bridge.call(a, "create_program", {"id": "c", "module": ["custom", "Configures"]}))
    ok(bridge.call(b, "create_program", {"id": "p", "signature": "question -> answer"}))
    results = []

    def run(session, pid):
        results.append(bridge.call(session, "execute", {"id": pid, "inputs": {"question": "?"}}))

    threads = [threading.Thread(target=run, args=(a, "c")) for _ in range(12)]
    threads += [threading.Thread(target=run, args=(b, "p")) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r[0] for r in results), [r for r in results if not r[0]][:1]
    # Every call of a's saw its callback; none of b's did, and the global default is untouched.
    assert len(a.namespace["SEEN"]) == 12
    assert dspy.settings.callbacks == [] and a.settings["callbacks"]
    ok(bridge.call(b, "execute", {"id": "p", "inputs": {"question": "?"}}))
    assert len(a.namespace["SEEN"]) == 12


def test_dspy_configure_lm_replaces_the_sessions_lm(open_session):
    a = open_session(dummy_by_substring({"": {"answer": "old"}}))
    source = "import dspy\nfrom dspy.utils import DummyLM\ndspy.configure(lm=DummyLM({'': {'answer': 'new'}}))\n"
    ok(bridge.call(a, "load_module", {"name": "m", "source": source}))
    assert ask(a) == "new"
    assert dspy.settings.lm is None


def test_dspy_configure_outside_a_session_is_refused():
    with pytest.raises(RuntimeError, match="outside a dspex_native session"):
        dspy.configure(adapter=dspy.JSONAdapter())
    with pytest.raises(RuntimeError, match="cache:"):
        dspy.configure_cache(enable_disk_cache=True)


def test_an_export_keeps_only_the_fields_of_each_predictor(open_session):
    s = open_session(dummy_by_substring({"": {"answer": "x"}}))
    ok(bridge.call(s, "create_program", {"id": "p", "signature": "question -> answer"}))
    trainset = [{"question": "q1", "answer": "a1", "source": "notes"}]
    ok(bridge.call(s, "compile", {"id": "p", "trainset": trainset, "optimizer": "labeled_few_shot"}))
    export = ok(bridge.call(s, "export_program", {"id": "p"}))
    assert export["state"]["demos"] == [{"question": "q1", "answer": "a1"}]
    ok(bridge.call(open_session(), "import_program", {"id": "p", "exported": export}))


def test_dspy_string_signatures_in_session_code_are_parsed_as_data(tmp_path):
    sentinel = tmp_path / "pwned"
    payload = f"q -> a: list[\"__import__('os').system('touch {sentinel}')\"]"
    with pytest.raises(ValueError, match="quoted type"):
        dspy.Predict(payload)
    assert not sentinel.exists()
    # DSPy's own internal signatures, and types handed over as objects, still work.
    assert list(dspy.Signature(" -> x").output_fields) == ["x"]


    import pydantic

    class Point(pydantic.BaseModel):
        x: int

    sig = dspy.Signature("q -> p: Point", custom_types={"Point": Point})
    assert sig.output_fields["p"].annotation is Point
