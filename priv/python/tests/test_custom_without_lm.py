"""A custom module that calls no LM runs in a session without one; one that does call an
LM gets :no_lm, named as such, instead of DSPy's advice to call dspy.configure."""

from support import call, err, ok

SOURCE = """
import dspy

class Echo(dspy.Module):
    def forward(self, text):
        return dspy.Prediction(echo=text.upper())

class Asks(dspy.Module):
    def __init__(self):
        super().__init__()
        self.predict = dspy.Predict("text -> reply")

    def forward(self, text):
        return self.predict(text=text)
"""


def test_a_module_that_calls_no_lm_needs_none(open_session):
    session = open_session()
    ok(call(session, "load_module", {"name": "m", "source": SOURCE}))
    ok(call(session, "create_program", {"id": "echo", "module": ["custom", "Echo"]}))
    assert ok(call(session, "execute", {"id": "echo", "inputs": {"text": "hi"}})) == {"echo": "HI"}


def test_a_module_that_calls_an_lm_without_one_is_no_lm(open_session):
    session = open_session()
    ok(call(session, "load_module", {"name": "m", "source": SOURCE}))
    ok(call(session, "create_program", {"id": "asks", "module": ["custom", "Asks"]}))
    error = err(call(session, "execute", {"id": "asks", "inputs": {"text": "hi"}}), "no_lm")
    assert 'program "asks" called an LM' in error["message"]
    assert "configure(session, lm:" in error["message"]
    assert "dspy.configure" not in error["message"]
    assert ok(call(session, "info"))["failures"] == 1


def test_a_predict_program_still_needs_an_lm_up_front(open_session):
    session = open_session()
    ok(call(session, "create_program", {"id": "p", "signature": "q -> a"}))
    error = err(call(session, "execute", {"id": "p", "inputs": {"q": "?"}}), "no_lm")
    assert error["message"].startswith("session")
