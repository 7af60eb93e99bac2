"""Python objects held by reference: dotted paths under allowed roots, calls, attributes,
results as terms or refs, refs confined to their session, programs from refs."""

import pytest
from support import dummy_by_substring, err, ok

import dspex_bridge as bridge
from dspex_bridge.refs import REF_TAG


def is_ref(value):
    return isinstance(value, tuple) and len(value) == 3 and value[0] == REF_TAG


def call(session, op, **args):
    return bridge.call(session, op, args)


def test_a_dotted_path_builds_an_object_held_by_reference(open_session):
    s = open_session(dummy_by_substring({"": {"answer": "Paris"}}))
    cot = ok(call(s, "py_call", target="dspy.Predict", args=["question -> answer"]))
    assert is_ref(cot) and s.refs[cot[1]].__class__.__name__ == "Predict"
    assert ok(call(s, "py_call", target=cot, kwargs={"question": "Capital?"})) == {"answer": "Paris"}


def test_plain_results_are_terms_and_examples_are_maps(open_session):
    s = open_session()
    example = ok(call(s, "py_call", target="dspy.Example", kwargs={"question": "q", "answer": "a"}))
    assert example == {"question": "q", "answer": "a"}
    kept = ok(call(s, "py_call", target="dspy.Example", kwargs={"question": "q"}, as_ref=True))
    assert is_ref(kept)
    with_inputs = ok(call(s, "py_method", ref=kept[1], name="with_inputs", args=["question"], as_ref=True))
    assert ok(call(s, "py_method", ref=with_inputs[1], name="inputs")) == {"question": "q"}
    assert ok(call(s, "py_attr", ref=with_inputs[1], name="question")) == "q"
    ok(call(s, "py_set_attr", ref=with_inputs[1], name="question", value=[1, (2, None)]))
    assert ok(call(s, "py_attr", ref=with_inputs[1], name="question")) == [1, (2, None)]


def test_refs_in_arguments_are_objects_of_the_same_session_only(open_session):
    a, b = open_session(), open_session()
    predict = ok(call(a, "py_call", target="dspy.Predict", args=["q -> a"]))
    chain = ok(call(a, "py_call", target="dspy.ChainOfThought", args=[ok(call(a, "py_attr", ref=predict[1], name="signature"))]))
    assert is_ref(chain)
    error = err(call(b, "py_attr", ref=predict[1], name="signature"), "invalid_argument")
    assert "not a live object" in error["message"]


@pytest.mark.parametrize(
    "target, words",
    [
        ("os.system", 'root "os" is not importable'),
        ("dspy.__builtins__", "not a public name"),
        ("dspy._private", "not a public name"),
        ("dspy.utils..x", "not a public name"),
        ("dspy.NoSuchThing", 'has no "NoSuchThing"'),
        (42, "dotted path"),
    ],
)
def test_paths_outside_the_allowed_roots_are_refused(open_session, target, words):
    error = err(call(open_session(), "py_call", target=target), "invalid_argument")
    assert words in error["message"]


def test_private_attributes_are_refused(open_session):
    s = open_session()
    ref = ok(call(s, "py_call", target="dspy.Predict", args=["q -> a"]))
    assert "not a public attribute" in err(call(s, "py_attr", ref=ref[1], name="__class__"), "invalid_argument")["message"]


def test_a_module_ref_becomes_a_program(open_session):
    s = open_session(dummy_by_substring({"": {"reasoning": "r", "answer": "4"}}))
    cot = ok(call(s, "py_call", target="dspy.ChainOfThought", args=["question -> answer"]))
    ok(call(s, "put_program", id="p", ref=cot[1]))
    assert ok(call(s, "execute", id="p", inputs={"question": "2+2?"}))["answer"] == "4"
    assert "not a live object" in err(call(s, "put_program", id="q", ref=999), "invalid_argument")["message"]


def test_closing_a_session_drops_its_refs(open_session):
    s = open_session()
    ok(call(s, "py_call", target="dspy.Predict", args=["q -> a"]))
    assert len(s.refs) == 1
    bridge.release(s)
    assert s.refs == {}
