"""Signatures are checked before DSPy parses them: DSPy imports any module a type names."""

import sys
import typing

import dspy
import pytest

from dspex_bridge import signatures
from dspex_bridge.errors import BridgeError
from support import call, dummy, err, ok


@pytest.fixture
def dspy_must_not_parse(monkeypatch):
    """Fails the test if dspy.Signature is reached."""
    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        raise AssertionError(f"dspy.Signature was called with {args!r}")

    monkeypatch.setattr(dspy, "Signature", spy)
    return calls


def refused(spec):
    with pytest.raises(BridgeError) as info:
        signatures.build(spec)
    assert info.value.reason == "invalid_signature"
    return info.value.message


# -- types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "type_text, expected",
    [
        ("int", int),
        ("list[str]", list[str]),
        ("Literal['a','b']", typing.Literal["a", "b"]),
        ("dict[str, int]", dict[str, int]),
        ("Optional[str]", typing.Optional[str]),
        ("str | None", typing.Optional[str]),
        ("typing.List[str]", typing.List[str]),
        ("tuple[int, ...]", tuple[int, ...]),
        ('Literal["it\'s", "a, b"]', typing.Literal["it's", "a, b"]),
        ("dspy.Image", dspy.Image),
    ],
)
def test_allowed_types_are_accepted(type_text, expected):
    sig = signatures.from_string(f"question: str -> answer: {type_text}")
    assert sig.output_fields["answer"].annotation == expected
    assert list(sig.input_fields) == ["question"]


def test_several_typed_fields():
    sig = signatures.from_string("question, context: list[str] -> answer: dict[str, int], score: float")
    assert list(sig.input_fields) == ["question", "context"]
    assert list(sig.output_fields) == ["answer", "score"]
    assert sig.input_fields["context"].annotation == list[str]
    assert sig.output_fields["score"].annotation is float


@pytest.mark.parametrize("module", ["this", "antigravity", "os", "subprocess"])
def test_type_naming_a_module_is_refused_before_dspy(monkeypatch, capsys, dspy_must_not_parse, module):
    # Make sure the import, if it happened, would be visible.
    monkeypatch.delitem(sys.modules, "this", raising=False)
    monkeypatch.delitem(sys.modules, "antigravity", raising=False)
    message = refused(f"q -> a: {module}")
    assert repr(module) in message and "not allowed" in message
    assert "this" not in sys.modules and "antigravity" not in sys.modules
    assert "Zen of Python" not in capsys.readouterr().out
    assert dspy_must_not_parse == []


@pytest.mark.parametrize(
    "text",
    [
        "q -> a: os.system",
        "q -> a: this",
        "q: this -> a",
        "q -> a: list[this]",
        "q -> a: dict[str, os.path]",
        "q -> a: Optional[this]",
        "q -> a: str | this",
        "q -> a: int.__class__",
        "q -> a: typing.sys",
        "q -> a: dspy.settings",
        "q -> a: __import__",
        "q -> a: Field(default=this)",
        "q -> a: Literal[this]",
        "q -> a: list[str].__class__",
    ],
)
def test_disallowed_names_are_refused_before_dspy(monkeypatch, capsys, dspy_must_not_parse, text):
    monkeypatch.delitem(sys.modules, "this", raising=False)
    refused(text)
    assert "this" not in sys.modules
    assert "Zen of Python" not in capsys.readouterr().out
    assert dspy_must_not_parse == []


@pytest.mark.parametrize(
    "text",
    [
        # Python's quoting and bracket rules hide `this` from a text-only check.
        'q -> a: Literal["\\"", this, "\\""]',
        "q -> a: Literal['''x' str ''', this, 'str']",
        "q -> a: Literal[']', this, b:str]",
        "q -> a: Literal['\\'', this, '\\'']",
    ],
)
def test_names_hidden_by_quoting_tricks_are_refused(monkeypatch, capsys, text):
    monkeypatch.delitem(sys.modules, "this", raising=False)
    message = refused(text)
    assert "'this'" in message
    assert "this" not in sys.modules
    assert "Zen of Python" not in capsys.readouterr().out


def test_quoted_names_inside_literal_are_just_strings():
    sig = signatures.from_string("q -> a: Literal['os.system', \"this\"]")
    assert sig.output_fields["a"].annotation == typing.Literal["os.system", "this"]


# -- malformed strings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("question answer", "exactly one '->'"),
        ("a -> b -> c", "exactly one '->'"),
        (" -> answer", "no inputs"),
        ("question -> ", "no outputs"),
        ("question, -> answer", "not an identifier"),
        ("1question -> answer", "not an identifier"),
        ("ques-tion -> answer", "not an identifier"),
        ("question -> the answer", "not an identifier"),
        ("question -> _answer", "underscore"),
        ("question, question -> answer", "appears twice"),
        ("question -> question", "appears twice"),
        ("question -> answer:", "empty type"),
        ("question -> answer: list[str", "not valid"),
        ("q -> " + "a" * 10_001, "the limit is 10000"),
        ("q -> " + ", ".join(f"f{i}" for i in range(201)), "the limit is 200"),
    ],
)
def test_malformed_strings_are_refused_before_dspy(dspy_must_not_parse, text, words):
    assert words in refused(text)
    assert dspy_must_not_parse == []


def test_two_hundred_fields_are_fine():
    sig = signatures.from_string("q -> " + ", ".join(f"f{i}" for i in range(200)))
    assert len(sig.output_fields) == 200


def test_a_non_generic_type_with_arguments_is_invalid_signature():
    # Passes the name check, but int is not generic.
    message = refused("q -> a: int[str]")
    assert "int takes no type arguments" in message


@pytest.mark.parametrize("spec", [42, None, ["q", "a"]])
def test_a_non_string_non_map_signature_is_refused(spec):
    assert "must be a map" in refused(spec)


# -- structured signatures ------------------------------------------------------------------


def test_structured_signature_fields_descriptions_and_instructions():
    sig = signatures.from_structure(
        {
            "inputs": [["question", "What to answer"], ["context", None]],
            "outputs": [["answer", "Short answer"]],
            "instructions": "Be brief.",
        }
    )
    assert list(sig.input_fields) == ["question", "context"]
    assert list(sig.output_fields) == ["answer"]
    assert sig.input_fields["question"].json_schema_extra["desc"] == "What to answer"
    assert sig.output_fields["answer"].json_schema_extra["desc"] == "Short answer"
    assert sig.instructions == "Be brief."


def test_structured_signature_without_instructions_gets_dspys_default():
    sig = signatures.from_structure({"inputs": [["q", None]], "outputs": [["a", None]]})
    assert "`q`" in sig.instructions and "`a`" in sig.instructions


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"outputs": [["a", None]]}, "non-empty :inputs"),
        ({"inputs": [], "outputs": [["a", None]]}, "non-empty :inputs"),
        ({"inputs": [["q", None]], "outputs": "a"}, "non-empty :outputs"),
        ({"inputs": [["1q", None]], "outputs": [["a", None]]}, "not an identifier"),
        ({"inputs": [["q", None]], "outputs": [["a; import os", None]]}, "not an identifier"),
        ({"inputs": [["_q", None]], "outputs": [["a", None]]}, "underscore"),
        ({"inputs": [["q", None]], "outputs": [["q", None]]}, "appears twice"),
        ({"inputs": [["q", 3]], "outputs": [["a", None]]}, "must be a string"),
        ({"inputs": [["q", None]], "outputs": [["a", None]], "instructions": 5}, "instructions must be a string"),
        ({"inputs": [[f"f{i}", None] for i in range(201)], "outputs": [["a", None]]}, "the limit is 200"),
    ],
)
def test_bad_structured_signatures(spec, words):
    assert words in refused(spec)


def test_invalid_signature_through_call(open_session, monkeypatch):
    monkeypatch.delitem(sys.modules, "this", raising=False)
    session = open_session(dummy())
    error = err(call(session, "create_program", {"id": "x", "signature": "q -> a: this"}), "invalid_signature")
    assert "'this'" in error["message"]
    assert error["python_type"] is None
    assert "this" not in sys.modules
    assert ok(call(session, "list_programs")) == []


@pytest.mark.parametrize("entry", [["q"], "q", ["q", None, "extra"], 42])
def test_a_malformed_structured_field_is_invalid_signature(entry):
    with pytest.raises(BridgeError) as caught:
        signatures.from_structure({"inputs": [entry], "outputs": [["a", None]]})
    assert caught.value.reason == "invalid_signature"


def test_equal_specs_share_one_signature_class_and_different_ones_do_not():
    a = signatures.build("question -> answer")
    assert signatures.build("question -> answer") is a
    assert signatures.build("question -> answer: int") is not a
    spec = {"inputs": [["q", "desc"]], "outputs": [["a", None]], "instructions": "Be brief."}
    s1 = signatures.build(spec)
    assert signatures.build({"inputs": [["q", "desc"]], "outputs": [["a", None]], "instructions": "Be brief."}) is s1
    assert signatures.build({**spec, "instructions": "Be long."}) is not s1
    assert s1.instructions == "Be brief."
