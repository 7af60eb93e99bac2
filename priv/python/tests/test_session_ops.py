"""call(session, op, args) for every operation in session.OPS."""

import pytest

import dspex_bridge as bridge
from dspex_bridge import Atom
from dspex_bridge.session import OPS
from support import call, dummy, dummy_by_substring, err, ok

STRUCTURED = {
    "inputs": [["question", "A question about arithmetic"]],
    "outputs": [["answer", None]],
    "instructions": "Answer with a single number, in words.",
}


def test_ops_are_exactly_the_documented_ones():
    # Elixir sends these names; anything else (close, __init__, ...) must not be callable.
    assert set(OPS) == {
        "configure",
        "create_program",
        "put_program",
        "stream",
        "py_call",
        "py_method",
        "py_attr",
        "py_set_attr",
        "execute",
        "list_programs",
        "delete_program",
        "reset",
        "info",
        "load_module",
        "history",
        "export_program",
        "import_program",
        "compile",
    }


@pytest.mark.parametrize("op", ["close", "__init__", "label", "_lock", "programs", "nope"])
def test_unknown_ops_are_refused_and_do_nothing(open_session, op):
    session = open_session(dummy())
    error = err(call(session, op), "invalid_argument")
    assert f'"{op}"' in error["message"]
    assert not session.closed
    assert ok(call(session, "info"))["id"] == session.id


# -- create_program / execute --------------------------------------------------------------


def test_predict_with_a_string_signature(open_session):
    session = open_session(dummy({"answer": "4"}))
    assert ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"})) is None
    result = ok(call(session, "execute", {"id": "qa", "inputs": {"question": "2 + 2?"}}))
    assert result == {"answer": "4"}
    assert type(result) is dict


def test_predict_is_the_default_module(open_session):
    session = open_session(dummy({"answer": "4"}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    assert type(session.programs["qa"].module).__name__ == "Predict"
    assert session.programs["qa"].kind == "predict"


def test_chain_of_thought_returns_reasoning(open_session):
    session = open_session(dummy({"reasoning": "two plus two", "answer": "4"}))
    ok(
        call(
            session,
            "create_program",
            {"id": "cot", "module": "chain_of_thought", "signature": "question -> answer"},
        )
    )
    result = ok(call(session, "execute", {"id": "cot", "inputs": {"question": "2 + 2?"}}))
    assert result == {"reasoning": "two plus two", "answer": "4"}


def test_module_may_be_an_atom(open_session):
    session = open_session(dummy({"reasoning": "r", "answer": "4"}))
    ok(
        call(
            session,
            "create_program",
            {"id": "cot", "module": Atom("chain_of_thought"), "signature": "question -> answer"},
        )
    )
    assert set(ok(call(session, "execute", {"id": "cot", "inputs": {"question": "?"}}))) == {"reasoning", "answer"}


def test_typed_outputs_come_back_as_plain_values(open_session):
    session = open_session(dummy({"n": "7", "tags": '["a", "b"]', "ok": "True"}))
    ok(call(session, "create_program", {"id": "t", "signature": "q -> n: int, tags: list[str], ok: bool"}))
    assert ok(call(session, "execute", {"id": "t", "inputs": {"q": "x"}})) == {"n": 7, "tags": ["a", "b"], "ok": True}


@pytest.mark.parametrize("module", ["predict", "chain_of_thought"])
def test_structured_signature(open_session, module):
    answers = {"answer": "four"} if module == "predict" else {"reasoning": "2+2", "answer": "four"}
    session = open_session(dummy(answers))
    ok(call(session, "create_program", {"id": "s", "module": module, "signature": STRUCTURED}))
    result = ok(call(session, "execute", {"id": "s", "inputs": {"question": "2 + 2?"}}))
    assert result == answers
    # The instructions and the field description reach the LM.
    prompt = repr(session.lm.lm.history[-1]["messages"])
    assert "Answer with a single number, in words." in prompt
    assert "A question about arithmetic" in prompt


def test_unsupported_module_kind(open_session):
    session = open_session(dummy())
    error = err(
        call(session, "create_program", {"id": "x", "module": "program_of_thought", "signature": "q -> a"}),
        "invalid_argument",
    )
    assert '"program_of_thought"' in error["message"]
    # ReAct needs tools.
    error = err(call(session, "create_program", {"id": "x", "module": "react", "signature": "q -> a"}), "invalid_argument")
    assert "at least one tool" in error["message"]
    assert ok(call(session, "list_programs")) == []


def test_invalid_signature_creates_nothing(open_session):
    session = open_session(dummy())
    err(call(session, "create_program", {"id": "x", "signature": "q a"}), "invalid_signature")
    err(call(session, "create_program", {"id": "x", "signature": None}), "invalid_signature")
    assert ok(call(session, "list_programs")) == []


def test_already_exists_keeps_the_old_program(open_session):
    session = open_session(dummy({"answer": "old"}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    error = err(
        call(session, "create_program", {"id": "qa", "signature": "question -> verdict"}), "already_exists"
    )
    assert '"qa"' in error["message"]
    assert ok(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}})) == {"answer": "old"}


def test_replace_true_replaces_the_program(open_session):
    session = open_session(dummy({"verdict": "new"}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> verdict", "replace": True}))
    assert ok(call(session, "list_programs")) == ["qa"]
    assert ok(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}})) == {"verdict": "new"}


def test_a_bad_replacement_keeps_the_old_program(open_session):
    session = open_session(dummy({"answer": "old"}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    err(call(session, "create_program", {"id": "qa", "signature": "q -> a: os.system", "replace": True}),
        "invalid_signature")
    assert ok(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}})) == {"answer": "old"}


def test_missing_inputs_are_named(open_session):
    session = open_session(dummy({"answer": "x"}))
    ok(call(session, "create_program", {"id": "rag", "signature": "question, context -> answer"}))
    error = err(call(session, "execute", {"id": "rag", "inputs": {"question": "?"}}), "invalid_argument")
    assert "missing context" in error["message"]
    assert "takes inputs context, question" in error["message"]


def test_unknown_inputs_are_named(open_session):
    session = open_session(dummy({"answer": "x"}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    error = err(
        call(session, "execute", {"id": "qa", "inputs": {"question": "?", "extra": 1, "more": 2}}),
        "invalid_argument",
    )
    assert "unknown extra, more" in error["message"]
    assert "missing" not in error["message"]


def test_missing_and_unknown_together(open_session):
    session = open_session(dummy())
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    error = err(call(session, "execute", {"id": "qa", "inputs": {"questoin": "?"}}), "invalid_argument")
    assert "missing question" in error["message"] and "unknown questoin" in error["message"]


def test_inputs_must_be_a_map_with_string_keys(open_session):
    session = open_session(dummy())
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    assert "inputs must be a map" in err(
        call(session, "execute", {"id": "qa", "inputs": ["question"]}), "invalid_argument"
    )["message"]
    assert "inputs must be a map" in err(call(session, "execute", {"id": "qa"}), "invalid_argument")["message"]
    assert "input 1 must be an atom or a string" in err(
        call(session, "execute", {"id": "qa", "inputs": {1: "?"}}), "invalid_argument"
    )["message"]


def test_input_validation_failures_do_not_count_as_executions(open_session):
    session = open_session(dummy())
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    err(call(session, "execute", {"id": "qa", "inputs": {}}), "invalid_argument")
    info = ok(call(session, "info"))
    assert (info["executions"], info["failures"]) == (0, 0)


def test_no_lm(open_session):
    session = open_session(None)
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    error = err(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}}), "no_lm")
    assert "configure" in error["message"]


def test_not_found(open_session):
    session = open_session(dummy({"answer": "x"}))
    error = err(call(session, "execute", {"id": "ghost", "inputs": {}}), "not_found")
    assert '"ghost"' in error["message"]
    err(call(session, "delete_program", {"id": "ghost"}), "not_found")


def test_atom_and_string_program_ids_are_the_same_program(open_session):
    session = open_session(dummy({"answer": "x"}))
    ok(call(session, "create_program", {"id": Atom("qa"), "signature": "question -> answer"}))
    err(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}), "already_exists")
    assert ok(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}})) == {"answer": "x"}


# -- list / delete / reset / info ---------------------------------------------------------


def test_list_programs_is_sorted(open_session):
    session = open_session(dummy())
    assert ok(call(session, "list_programs")) == []
    for pid in ["zeta", "alpha", "mu"]:
        ok(call(session, "create_program", {"id": pid, "signature": "q -> a"}))
    assert ok(call(session, "list_programs")) == ["alpha", "mu", "zeta"]


def test_delete_program(open_session):
    session = open_session(dummy())
    for pid in ["a", "b"]:
        ok(call(session, "create_program", {"id": pid, "signature": "q -> a"}))
    assert ok(call(session, "delete_program", {"id": "a"})) is None
    assert ok(call(session, "list_programs")) == ["b"]
    err(call(session, "delete_program", {"id": "a"}), "not_found")
    err(call(session, "execute", {"id": "a", "inputs": {"q": "?"}}), "not_found")
    # The id is free again.
    ok(call(session, "create_program", {"id": "a", "signature": "q -> a"}))


def test_reset_drops_every_program_but_keeps_the_lm(open_session):
    session = open_session(dummy({"answer": "after reset"}))
    for pid in ["a", "b"]:
        ok(call(session, "create_program", {"id": pid, "signature": "q -> a"}))
    assert ok(call(session, "reset")) is None
    assert ok(call(session, "list_programs")) == []
    assert ok(call(session, "info"))["programs"] == 0
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    assert ok(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}})) == {"answer": "after reset"}


def test_info_counts_executions_and_failures(open_session):
    # The second answer lacks the output field, so that execution fails to parse (ChatAdapter
    # then retries with JSONAdapter, which takes the third).
    session = open_session(dummy({"answer": "1"}, {"wrong": "2"}, {"wrong": "2"}, {"answer": "3"}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    ok(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}}))
    failure = err(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}}), "python_error")
    assert failure["python_type"].endswith("AdapterParseError")
    ok(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}}))
    info = ok(call(session, "info"))
    assert info == {
        "id": session.id,
        "name": None,
        "programs": 1,
        "executions": 2,
        "failures": 1,
        "lm": "dummy",
        # DummyLM reports no tokens; the totals exist per model all the same.
        "usage": {"dummy": {"completion_tokens": 0, "prompt_tokens": 0, "total_tokens": 0}},
    }


# -- configure ------------------------------------------------------------------------------


def test_configure_switches_lms(open_session):
    session = open_session(None)
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    err(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}}), "no_lm")

    assert ok(call(session, "configure", {"lm": dummy({"answer": "from A"})})) is None
    assert ok(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}})) == {"answer": "from A"}

    ok(call(session, "configure", {"lm": dummy_by_substring({"?": {"answer": "from B"}})}))
    assert ok(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}})) == {"answer": "from B"}

    ok(call(session, "configure", {"lm": {"kind": "lm", "model": "openai/gpt-4o-mini"}}))
    assert ok(call(session, "info"))["lm"] == "openai/gpt-4o-mini"

    ok(call(session, "configure", {"lm": None}))
    assert ok(call(session, "info"))["lm"] is None
    err(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}}), "no_lm")
    # Programs survive LM changes.
    assert ok(call(session, "list_programs")) == ["qa"]


def test_a_bad_configure_keeps_the_current_lm(open_session):
    session = open_session(dummy({"answer": "still A"}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    err(call(session, "configure", {"lm": {"kind": "bogus"}}), "invalid_argument")
    assert ok(call(session, "info"))["lm"] == "dummy"
    assert ok(call(session, "execute", {"id": "qa", "inputs": {"question": "?"}})) == {"answer": "still A"}


# -- closed sessions ------------------------------------------------------------------------


def test_released_session_answers_closed(open_session):
    session = open_session(dummy({"answer": "x"}), name="gone")
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    bridge.release(session)
    for op in sorted(OPS):
        error = err(call(session, op, {"id": "qa", "inputs": {"question": "?"}}), "closed")
        assert '"gone"' in error["message"]
    bridge.release(session)  # releasing twice is harmless


def test_configure_without_an_lm_key_leaves_the_lm_alone(open_session):
    session = open_session(dummy({"answer": "kept"}))
    assert ok(call(session, "configure", {})) is None
    assert ok(call(session, "info"))["lm"] == "dummy"


# -- typed fields, custom modules, history -----------------------------------------------


def test_typed_output_fields_come_back_as_their_types(open_session):
    session = open_session(dummy({"n": "42", "tags": '["a", "b"]', "mood": "sad", "flag": "true", "meta": '{"k": 1}'}))
    spec = {
        "inputs": [["q", None]],
        "outputs": [
            ["n", None, "integer"],
            ["tags", None, ["list", "string"]],
            ["mood", None, ["literal", ["happy", "sad"]]],
            ["flag", None, "boolean"],
            ["meta", None, "map"],
        ],
    }
    ok(call(session, "create_program", {"id": "t", "signature": spec}))
    assert ok(call(session, "execute", {"id": "t", "inputs": {"q": "?"}})) == {
        "n": 42,
        "tags": ["a", "b"],
        "mood": "sad",
        "flag": True,
        "meta": {"k": 1},
    }


@pytest.mark.parametrize("bad", ["decimal", ["list"], ["literal", []], ["tuple", "string"], 3])
def test_unknown_field_types_are_invalid_signature(open_session, bad):
    session = open_session()
    spec = {"inputs": [["q", None]], "outputs": [["a", None, bad]]}
    error = err(call(session, "create_program", {"id": "t", "signature": spec}), "invalid_signature")
    assert "field 'a' has type" in error["message"]


CUSTOM = """
import dspy

class Shout(dspy.Module):
    def __init__(self):
        super().__init__()
        self.predict = dspy.Predict("text -> loud")

    def forward(self, text):
        out = self.predict(text=text)
        return dspy.Prediction(loud=out.loud.upper(), original=text)
"""


def test_custom_modules_live_in_their_session_only(open_session):
    a = open_session(dummy({"loud": "hey"}))
    b = open_session(dummy({"loud": "hey"}))
    assert ok(call(a, "load_module", {"name": "shout", "source": CUSTOM})) == ["Shout"]
    ok(call(a, "create_program", {"id": "s", "module": ["custom", "Shout"]}))
    assert ok(call(a, "execute", {"id": "s", "inputs": {"text": "hi"}})) == {"loud": "HEY", "original": "hi"}
    error = err(call(b, "create_program", {"id": "s", "module": ["custom", "Shout"]}), "not_found")
    assert "Shout" in error["message"]


def test_history_returns_the_last_n_lm_calls(open_session):
    session = open_session(dummy({"answer": "one"}, {"answer": "two"}, {"answer": "three"}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    for q in ["first?", "second?", "third?"]:
        ok(call(session, "execute", {"id": "qa", "inputs": {"question": q}}))
    last_two = ok(call(session, "history", {"n": 2}))
    assert len(last_two) == 2
    assert "second?" in str(last_two[0]["messages"]) and "third?" in str(last_two[1]["messages"])
    assert all(set(e) == {"model", "messages", "outputs", "usage", "cost", "timestamp"} for e in last_two)
    assert ok(call(session, "history", {"n": 0})) == []


def test_export_then_import_preserves_demos_instructions_and_answers(open_session):
    lm = {"kind": "dummy", "answers": {"": {"reasoning": "r", "answer": "same"}}}
    a = open_session(lm)
    spec = {"inputs": [["question", "a question"]], "outputs": [["answer", None]], "instructions": "Be terse."}
    ok(call(a, "create_program", {"id": "qa", "signature": spec, "module": "chain_of_thought"}))
    exported = ok(call(a, "export_program", {"id": "qa"}))
    # Give it demos through the exported state, as a compiled program would have.
    demos = [{"question": "1+1?", "reasoning": "add", "answer": "2", "augmented": True}]
    exported["state"]["predict"]["demos"] = demos
    b = open_session(lm)
    ok(call(b, "import_program", {"id": "copy", "exported": exported}))
    again = ok(call(b, "export_program", {"id": "copy"}))
    assert again["state"]["predict"]["demos"] == demos
    assert again["state"]["predict"]["signature"]["instructions"] == "Be terse."
    assert again["module"] == "chain_of_thought" and again["signature"] == spec
    assert ok(call(b, "execute", {"id": "copy", "inputs": {"question": "?"}}))["answer"] == "same"
    err(call(b, "import_program", {"id": "copy", "exported": exported}), "already_exists")
    err(call(b, "import_program", {"id": "x", "exported": {"format": "other"}}), "invalid_argument")


def test_react_tools_call_through_call_elixir_and_errors_reach_the_lm(open_session, monkeypatch):
    from dspex_bridge import hooks

    calls = []

    def fake_call_elixir(request, timeout, caller=None):
        calls.append((request, timeout))
        if request["args"].get("city") == "Atlantis":
            raise RuntimeError("no such city")
        return {"temp": 21}

    monkeypatch.setattr(hooks, "call_elixir", fake_call_elixir)
    answers = [
        {"next_thought": "look it up", "next_tool_name": "weather", "next_tool_args": {"city": "Atlantis"}},
        {"next_thought": "again", "next_tool_name": "weather", "next_tool_args": {"city": "Paris"}},
        {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
        {"reasoning": "it is 21", "answer": "21 degrees"},
    ]
    session = open_session(dummy(*answers))
    tool = {"name": "weather", "description": "Weather by city", "key": "w/weather",
            "args": {"city": {"type": "string", "description": "a city"}}}
    ok(call(session, "create_program", {"id": "w", "signature": "question -> answer", "module": "react",
                                         "tools": [tool], "max_iters": 5, "tool_timeout": 2_500}))
    out = ok(call(session, "execute", {"id": "w", "inputs": {"question": "Weather in Paris?"}}))
    assert out["answer"] == "21 degrees"
    assert [c[0]["args"]["city"] for c in calls] == ["Atlantis", "Paris"]
    assert calls[0][1] == 2.5
    trajectory = str(out["trajectory"])
    assert "no such city" in trajectory and "21" in trajectory


def test_labeled_few_shot_puts_the_trainset_in_the_prompt(open_session):
    session = open_session(dummy({"answer": "x"}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    trainset = [{"question": "2+2?", "answer": "4"}, {"question": "3+3?", "answer": "6"}]
    out = ok(call(session, "compile", {"id": "qa", "trainset": trainset, "optimizer": "labeled_few_shot", "as": "qa2"}))
    assert out == {"id": "qa2", "demos": 2}
    assert sorted(ok(call(session, "list_programs"))) == ["qa", "qa2"]
    ok(call(session, "execute", {"id": "qa2", "inputs": {"question": "5+5?"}}))
    assert "3+3?" in str(ok(call(session, "history", {"n": 1}))[0]["messages"])


def test_bootstrap_few_shot_keeps_demos_the_metric_accepts(open_session):
    session = open_session(dummy_by_substring({"2+2": {"answer": "4"}, "3+3": {"answer": "7"}, "": {"answer": "?"}}))
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    trainset = [{"question": "2+2?", "answer": "4"}, {"question": "3+3?", "answer": "6"}]
    out = ok(call(session, "compile", {"id": "qa", "trainset": trainset, "optimizer": "bootstrap_few_shot",
                                        "metric": {"kind": "exact_match", "field": "answer"},
                                        "options": {"max_labeled_demos": 0}}))
    # Only 2+2 was answered right, so only it became a bootstrapped demo.
    assert out["demos"] == 1
    state = ok(call(session, "export_program", {"id": "qa"}))["state"]
    assert [d["question"] for d in state["demos"]] == ["2+2?"]
