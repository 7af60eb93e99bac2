"""DSPy's process-wide settings, made per session.

`dspy.configure(...)` changes the defaults of every thread, and only the thread that first
called it may call it again. Session code (a custom module, `load_module`'s top level) that
calls it would change every other session's adapter, callbacks and LM, and fail on most
worker threads. So every operation of a session runs inside `dspy.context(...)` with that
session's settings and a marker naming the session, and `dspy.configure` is replaced by a
function that applies the settings to the marked session: at once for the rest of the call,
and to every later call of that session. Outside a session's call it refuses (nothing in
this interpreter may change the global defaults). `dspy.configure_cache` is refused too: the
cache is chosen per LM (`cache:`). DSPy's process-wide LM history is kept per session too.
"""

import sys
import weakref

import dspy
from dspy.dsp.utils.utils import dotdict

from . import hooks, observe

# The module, not the `settings` object that `dspy.dsp.utils` re-exports under its name.
_settings = sys.modules["dspy.dsp.utils.settings"]

MARKER = "dspex_session"
# The running job's way back to its caller (hooks.current_caller()), in the context so that
# threads the job starts (DSPy copies the context into its worker threads) reach it too.
CALLER = "dspex_caller"

# LM calls each LM and program remembers (DSPy's default, 10,000 per object, grows a
# long-lived session by megabytes); set by the runtime's `history_size`.
HISTORY_SIZE = 100

# Settings the bridge sets on every call; session code cannot change them.
MANAGED = frozenset({MARKER, CALLER, "trace", "max_history_size"})


def caller():
    """The running job's way back to its caller, on this thread or one the job started."""
    return _settings.thread_local_overrides.get().get(CALLER)


def current():
    """The session whose call is running on this thread (or in this task), if any."""
    ref = _settings.thread_local_overrides.get().get(MARKER)
    return ref() if isinstance(ref, weakref.ref) else None


def of(session):
    """Runs a session's operation with its LM and settings, marked as its own."""
    # A fresh trace per call: DSPy's global trace would keep every module alive. The marker
    # is a weak reference: a thread the session's code leaves behind does not keep it alive.
    # DSPy's own context manager, returned as is: one layer per call, not two.
    return dspy.context(
        **session.settings,
        lm=session.lm.lm,
        trace=[],
        max_history_size=HISTORY_SIZE,
        **{MARKER: weakref.ref(session), CALLER: hooks.current_caller() if hooks.current_caller else None},
    )


def configure(_settings_object=None, **kwargs):
    """`dspy.configure` inside dspex_native: applies to the calling session only."""
    session = current()
    if session is None:
        raise RuntimeError(
            "dspy.configure(...) was called outside a dspex_native session's call (for example in a "
            "thread that session code started); it would change every session. Use dspy.context(...) there."
        )
    managed = sorted(MANAGED & kwargs.keys())
    if managed:
        raise ValueError(f"dspy.configure: {', '.join(managed)} are set by dspex_native on every call")
    session.apply_settings(dict(kwargs))
    overrides = _settings.thread_local_overrides.get()
    _settings.thread_local_overrides.set(dotdict({**overrides, **kwargs}))


class SessionHistory:
    """Stands in for DSPy's process-wide `GLOBAL_HISTORY` (every LM call of every session, up
    to 10,000): each call is kept in the calling session's own list, bounded by
    `HISTORY_SIZE`, so `dspy.inspect_history(n)` in a session shows that session's calls,
    and reported to the job's caller (`observe`)."""

    def _entries(self):
        session = current()
        return session.lm_history if session is not None else []

    def append(self, entry):
        session = current()
        if session is not None:
            entries = session.lm_history
            entries.append(entry)
            del entries[: max(len(entries) - HISTORY_SIZE, 0)]
            session.add_usage(entry)
            observe.report(entry, caller())

    def pop(self, index=-1):
        return self._entries().pop(index)

    def clear(self):
        self._entries().clear()

    def __len__(self):
        return len(self._entries())

    def __iter__(self):
        return iter(list(self._entries()))

    def __getitem__(self, index):
        return self._entries()[index]


def configure_cache(*_args, **_kwargs):
    raise RuntimeError(
        "dspy.configure_cache(...) would replace the LM cache of every session; choose a session's "
        "cache with the LM option cache: (true, false, :session, :shared or {:disk, directory})"
    )


def install():
    """Replaces DSPy's global configuration entry points (called once, at setup)."""
    import dspy.clients
    from dspy.clients import base_lm

    base_lm.GLOBAL_HISTORY = SessionHistory()
    _settings.Settings.configure = configure
    dspy.configure = dspy.settings.configure
    dspy.configure_cache = dspy.clients.configure_cache = configure_cache
