"""Puts priv/python (the dspex_bridge package) and this directory on sys.path, so the suite
runs the same from priv/python (`pytest`) or from the project root (`pytest priv/python`)."""

import itertools
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for path in (ROOT, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

import pytest  # noqa: E402

import dspex_bridge as bridge  # noqa: E402
from dspex_bridge import cache, observe, scope, signatures  # noqa: E402
from support import Server  # noqa: E402

# As the runtime's setup() does: per-session dspy.configure and LM caches.
scope.install()
cache.install()
signatures.install()
observe.install()

_ids = itertools.count(1)


@pytest.fixture
def open_session():
    """open_session(lm_spec=None, name=None) -> Session, released at teardown."""
    opened = []

    def _open(lm_spec=None, name=None):
        ok, session = bridge.open_session(next(_ids), name, lm_spec)
        assert ok is True, session
        opened.append(session)
        return session

    yield _open
    for session in opened:
        bridge.release(session)


@pytest.fixture
def server():
    started = []

    def start(answer):
        started.append(Server(answer))
        return started[-1]

    yield start
    for s in started:
        s.httpd.shutdown()


@pytest.fixture
def server():
    """server(answer, content=None) -> a started Server, shut down at teardown."""
    started = []

    def start(answer, content=None):
        started.append(Server(answer, content))
        return started[-1]

    yield start
    for s in started:
        s.httpd.shutdown()
