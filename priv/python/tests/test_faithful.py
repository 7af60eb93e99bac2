"""DSPy inside a session behaves as in plain Python: source loaded with load_module has a
file that inspect can read, dspy.inspect_history shows the session's own calls."""

import io

import dspy
from support import dummy_by_substring, err, ok

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
