"""values.to_plain, Atom and field_name."""

import math

import dspy
import pydantic
import pytest

from dspex_bridge import Atom, Unrepresentable
from dspex_bridge.values import field_name, to_plain


class Answer(pydantic.BaseModel):
    text: str
    confidence: float
    sources: list[str]


def test_scalars_pass_through_unchanged():
    for value in [None, True, False, 0, -7, 2**80, 1.5, "text", ""]:
        out = to_plain(value)
        assert out == value and type(out) is type(value)


def test_prediction_becomes_a_plain_dict():
    out = to_plain(dspy.Prediction(reasoning="because", answer="42"))
    assert out == {"reasoning": "because", "answer": "42"}
    assert type(out) is dict


def test_example_and_nested_predictions():
    out = to_plain({"items": [dspy.Example(q="a"), dspy.Prediction(answer=[1, 2])]})
    assert out == {"items": [{"q": "a"}, {"answer": [1, 2]}]}
    assert all(type(item) is dict for item in out["items"])


def test_pydantic_models_are_dumped_as_json_types():
    out = to_plain(dspy.Prediction(answer=Answer(text="hi", confidence=0.5, sources=("a", "b"))))
    assert out == {"answer": {"text": "hi", "confidence": 0.5, "sources": ["a", "b"]}}


def test_tuples_stay_tuples_and_lists_stay_lists():
    out = to_plain({"pair": (1, [2, (3, "x")]), "list": [(1,), []]})
    assert out == {"pair": (1, [2, (3, "x")]), "list": [(1,), []]}
    assert type(out["pair"]) is tuple
    assert type(out["pair"][1]) is list
    assert type(out["pair"][1][1]) is tuple
    assert type(out["list"][0]) is tuple


def test_map_keys_may_be_any_representable_value():
    assert to_plain({(1, 2): "t", 3: "i", None: "n"}) == {(1, 2): "t", 3: "i", None: "n"}


@pytest.mark.parametrize(
    "value, message",
    [
        (math.nan, "result is nan, which has no Elixir form"),
        (math.inf, "result is inf, which has no Elixir form"),
        ({"scores": [1.0, 2.0, -math.inf]}, "result['scores'][2] is -inf"),
        ({"tags": {"a", "b"}}, "result['tags'] is a Python set"),
        ([1, (2, frozenset())], "result[1][1] is a Python frozenset"),
        ({"x": object()}, "result['x'] is a Python object"),
        (b"bytes", "result is a Python bytes"),
        (dspy.Prediction(answer={"deep": [complex(1, 2)]}), "result['answer']['deep'][0] is a Python complex"),
        ({frozenset(): 1}, "result key is a Python frozenset"),
    ],
)
def test_unrepresentable_values_are_refused_with_a_path(value, message):
    with pytest.raises(Unrepresentable) as info:
        to_plain(value)
    assert message in str(info.value)


def test_the_path_prefix_can_be_chosen():
    with pytest.raises(Unrepresentable, match=r"^inputs\[0\] is nan"):
        to_plain([math.nan], "inputs")


def test_atom_is_a_str_and_survives_a_round_trip():
    atom = Atom("ok")
    assert isinstance(atom, str)
    assert atom == "ok" and hash(atom) == hash("ok")
    assert repr(atom) == "Atom('ok')"
    assert f"status: {atom}" == "status: ok"
    out = to_plain({Atom("status"): [Atom("ok"), "ok"]})
    key = next(iter(out))
    assert type(key) is Atom
    assert type(out["status"][0]) is Atom
    assert type(out["status"][1]) is str


def test_atom_inside_a_prediction_survives(open_session):
    from support import call, ok

    session = open_session({"kind": "dummy", "answers": [{"answer": "x"}]})
    ok(call(session, "create_program", {"id": "qa", "signature": "question -> answer"}))
    # Inputs may be atoms; DSPy sees plain text.
    assert ok(call(session, "execute", {"id": "qa", "inputs": {"question": Atom("why")}})) == {"answer": "x"}
    prompt = repr(session.lm.lm.history[-1]["messages"])
    assert "why" in prompt and "Atom(" not in prompt


def test_field_name_accepts_atoms_and_strings_only():
    name = field_name(Atom("question"), "input")
    assert name == "question" and type(name) is str
    assert field_name("q", "input") == "q"
    with pytest.raises(TypeError, match="input 3 must be an atom or a string"):
        field_name(3, "input")


def _nest(depth, leaf):
    """`leaf` inside lists, dicts, tuples and Predictions, `depth` levels in all."""
    value = leaf
    for level in range(depth - 1):
        value = [[value], {"k": value}, (1, value), dspy.Prediction(p=value)][level % 4]
    return value


def test_a_result_nested_to_the_limit_converts_with_a_shallow_python_stack():
    import sys

    deep = _nest(512, "x" * 1_000_000)
    limit = sys.getrecursionlimit()
    # A recursive walk would need a frame or two per level.
    sys.setrecursionlimit(100)
    try:
        out = to_plain(deep)
    finally:
        sys.setrecursionlimit(limit)
    levels = 1
    while not isinstance(out, str):
        out = out[0] if isinstance(out, list) else out[1] if isinstance(out, tuple) else next(iter(out.values()))
        levels += 1
    assert levels == 512 and len(out) == 1_000_000


def test_deeper_than_the_limit_and_its_framing_is_refused_naming_the_place():
    # A call's result may wrap the user's value in up to 4 levels (result.trajectory...);
    # the Rust side then checks the exact limit.
    to_plain(_nest(516, "x"))
    with pytest.raises(Unrepresentable) as info:
        to_plain(_nest(517, "x"))
    message = str(info.value)
    assert message.startswith("result['p'][1]['k'][0]['p'][1]")
    assert message.endswith("nests deeper than 512 levels")


def test_a_list_that_contains_itself_is_refused_not_looped_on():
    loop = [1]
    loop.append(loop)
    with pytest.raises(Unrepresentable, match=r"^result\[1\]\[1\].*nests deeper than 512 levels$"):
        to_plain(loop)


def test_a_prediction_holding_deep_data_converts_without_recursion():
    # DSPy's own Example.toDict() recurses through nested lists and dicts.
    import sys

    deep = "leaf"
    for _ in range(510):
        deep = [deep]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100)
    try:
        out = to_plain(dspy.Prediction(trajectory={"observation_0": deep}))
    finally:
        sys.setrecursionlimit(limit)
    assert out == {"trajectory": {"observation_0": deep}}
