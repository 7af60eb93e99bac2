"""DSPy inside a session behaves as in plain Python: source loaded with load_module has a
file that inspect can read, dspy.inspect_history shows the session's own calls."""

import io

import dspy
from support import dummy, dummy_by_substring, err, ok

import dspex_bridge as bridge
from dspex_bridge import scope

REFINE = '''
import dspy

def short_answer(args, pred):
    """Rewards answers of at most five characters."""
    return 1.0 if len(pred.answer) <= 5 else 0.0

class Refined(dspy.Module):
    def __init__(self):
        super().__init__()
        self.refine = dspy.Refine(dspy.Predict("question -> answer"), N=2, reward_fn=short_answer, threshold=1.0)

    def forward(self, question):
        return self.refine(question=question)
'''


def test_refine_reads_the_source_of_a_loaded_reward_function(open_session):
    s = open_session(dummy_by_substring({"": {"answer": "Paris"}}))
    assert ok(bridge.call(s, "load_module", {"name": "refine", "source": REFINE})) == ["Refined"]
    ok(bridge.call(s, "create_program", {"id": "r", "module": ["custom", "Refined"]}))
    assert ok(bridge.call(s, "execute", {"id": "r", "inputs": {"question": "Capital?"}})) == {"answer": "Paris"}
    program = s.programs["r"].module
    assert "Rewards answers of at most five characters" in program.refine.reward_fn_code


def test_a_later_load_sees_earlier_names_and_tracebacks_show_the_source(open_session):
    s = open_session()
    ok(bridge.call(s, "load_module", {"name": "base", "source": "def helper():\n    raise ValueError('boom')\n"}))
    source = "import dspy\nclass Uses(dspy.Module):\n    def forward(self, x):\n        return helper()\n"
    assert ok(bridge.call(s, "load_module", {"name": "uses", "source": source})) == ["Uses"]
    ok(bridge.call(s, "create_program", {"id": "u", "module": ["custom", "Uses"]}))
    s.lm = bridge.lms.build(dummy_by_substring({"": {"answer": "x"}}))
    error = err(bridge.call(s, "execute", {"id": "u", "inputs": {"x": 1}}), "python_error")
    assert "raise ValueError('boom')" in error["traceback"] and "module base" in error["traceback"]
    other = open_session()
    assert ok(bridge.call(other, "load_module", {"name": "m", "source": "x = 1\n"})) == []
    assert "helper" not in other.namespace


def test_closing_the_session_unregisters_its_modules(open_session):
    import linecache
    import sys

    s = open_session()
    ok(bridge.call(s, "load_module", {"name": "m", "source": "x = 1\n"}))
    (module_name, filename), = s.modules
    assert module_name in sys.modules and filename in linecache.cache
    bridge.release(s)
    assert module_name not in sys.modules and filename not in linecache.cache


def test_inspect_history_shows_only_the_sessions_own_calls(open_session):
    a = open_session(dummy_by_substring({"": {"answer": "from a"}}))
    b = open_session(dummy_by_substring({"": {"answer": "from b"}}))
    for s in (a, b):
        ok(bridge.call(s, "create_program", {"id": "p", "signature": "question -> answer"}))
        ok(bridge.call(s, "execute", {"id": "p", "inputs": {"question": "?"}}))
    printed = io.StringIO()
    with scope.of(a):
        dspy.inspect_history(5, file=printed)
    assert "from a" in printed.getvalue() and "from b" not in printed.getvalue()
    assert len(a.lm_history) == 1


def test_history_is_bounded_per_session(open_session):
    s = open_session(dummy_by_substring({"": {"answer": "x"}}))
    ok(bridge.call(s, "create_program", {"id": "p", "signature": "question -> answer"}))
    old, scope.HISTORY_SIZE = scope.HISTORY_SIZE, 3
    try:
        for n in range(7):
            ok(bridge.call(s, "execute", {"id": "p", "inputs": {"question": str(n)}}))
    finally:
        scope.HISTORY_SIZE = old
    assert len(s.lm_history) == 3


def test_typed_inputs_take_images_and_histories_as_plain_data(open_session):
    # A list DummyLM: the substring kind cannot match a message made of image parts.
    s = open_session(dummy({"answer": "a cat"}))
    sig = "photo: dspy.Image, past: dspy.History, question -> answer"
    ok(bridge.call(s, "create_program", {"id": "p", "signature": sig}))
    inputs = {
        "photo": {"url": "data:image/png;base64,iVBORw0KGgo="},
        "past": [{"question": "hi", "answer": "hello"}],
        "question": "What is it?",
    }
    assert ok(bridge.call(s, "execute", {"id": "p", "inputs": inputs})) == {"answer": "a cat"}
    content = s.lm.lm.history[-1]["messages"][-1]["content"]
    assert any(part.get("type") == "image_url" for part in content if isinstance(part, dict))


def test_an_image_input_never_reads_a_file(open_session):
    s = open_session(dummy_by_substring({"": {"answer": "x"}}))
    ok(bridge.call(s, "create_program", {"id": "p", "signature": "photo: dspy.Image -> answer"}))
    for bad in ("/etc/passwd", {"url": "file:///etc/passwd"}, {"url": "x", "download": True}, 42):
        error = err(bridge.call(s, "execute", {"id": "p", "inputs": {"photo": bad}}), "invalid_argument")
        assert 'input "photo"' in error["message"]


def test_a_program_adapter_shapes_the_request(open_session, server):
    http = server("unused", content='{"answer": "json!"}')
    s = open_session(http.lm("sk-a", cache=False))
    args = {"id": "p", "signature": "question -> answer", "adapter": bridge.Atom("json")}
    ok(bridge.call(s, "create_program", args))
    assert ok(bridge.call(s, "execute", {"id": "p", "inputs": {"question": "?"}})) == {"answer": "json!"}
    assert "Respond with a JSON object" in http.requests[0][1]["messages"][-1]["content"]
    assert "bogus" in err(bridge.call(s, "create_program", {**args, "id": "q", "adapter": "bogus"}), "invalid_argument")["message"]


def test_a_session_adapter_applies_to_every_program(open_session, server):
    http = server("unused", content='{"answer": "json too"}')
    s = open_session(http.lm("sk-a", cache=False))
    ok(bridge.call(s, "configure", {"adapter": bridge.Atom("json")}))
    ok(bridge.call(s, "create_program", {"id": "p", "signature": "question -> answer"}))
    assert ok(bridge.call(s, "execute", {"id": "p", "inputs": {"question": "?"}})) == {"answer": "json too"}
    assert "Respond with a JSON object" in http.requests[0][1]["messages"][-1]["content"]
    ok(bridge.call(s, "configure", {"adapter": None}))
    assert "adapter" not in s.settings


def test_a_used_up_dummy_list_is_an_error_that_says_so(open_session):
    s = open_session(dummy({"answer": "only one"}))
    ok(bridge.call(s, "create_program", {"id": "p", "signature": "question -> answer"}))
    assert ok(bridge.call(s, "execute", {"id": "p", "inputs": {"question": "?"}})) == {"answer": "only one"}
    error = err(bridge.call(s, "execute", {"id": "p", "inputs": {"question": "?"}}), "python_error")
    assert "all 1 scripted answers were used" in error["message"]


def test_a_dummy_map_prefers_the_longest_key_and_fails_when_none_matches(open_session):
    s = open_session(dummy_by_substring({"": {"answer": "any"}, "France": {"answer": "Paris"}}))
    ok(bridge.call(s, "create_program", {"id": "p", "signature": "question -> answer"}))
    assert ok(bridge.call(s, "execute", {"id": "p", "inputs": {"question": "Capital of France?"}})) == {"answer": "Paris"}
    assert ok(bridge.call(s, "execute", {"id": "p", "inputs": {"question": "Capital of Peru?"}})) == {"answer": "any"}
    strict = open_session(dummy_by_substring({"France": {"answer": "Paris"}}))
    ok(bridge.call(strict, "create_program", {"id": "p", "signature": "question -> answer"}))
    error = err(bridge.call(strict, "execute", {"id": "p", "inputs": {"question": "Peru?"}}), "python_error")
    assert "no key of the answers map occurs in the prompt" in error["message"]
