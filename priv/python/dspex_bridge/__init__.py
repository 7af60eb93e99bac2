"""The Python half of dspex_native.

The Rust worker pool calls only the functions in this module:

- `open_session(id, name, lm_spec)` returns a `Session` that Rust owns;
- `call(session, op, args)` runs one operation and returns `(True, value)` or
  `(False, error_dict)`; it never raises, so one failing call cannot disturb a worker;
- `release(session)` drops a closed or collected session's programs;
- `global_call(op, args)` answers calls that belong to no session (`ping`, `stats`);
- `warm()` imports the LM client stack ahead of the first real LM call.
"""

import os
import sys

# litellm otherwise tries to download its model cost map at import, three times, offline.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402  (the ~1 s import happens here, on the runtime's own thread)

from . import cache, errors, lms, observe, refs, scope, signatures, streaming  # noqa: E402
from .errors import BridgeError, quote  # noqa: E402
from .session import LIVE_PROGRAMS, LIVE_SESSIONS, OPS, Session  # noqa: E402
from .values import Atom, Unrepresentable, to_plain  # noqa: E402

__all__ = ["Atom", "Cancelled", "Session", "open_session", "call", "release", "global_call", "setup", "warm"]


class Cancelled(BaseException):
    """Raised asynchronously in a job whose caller gave up (timeout or exit).

    A BaseException, so a program's `except Exception` does not swallow it."""


_TEST_HOOKS = False


def setup(options):
    """Called once by the runtime after import, with the runtime's settings."""
    global _TEST_HOOKS
    _TEST_HOOKS = bool(options.get("test_hooks"))
    from . import output

    output.install()
    scope.install()
    cache.install()
    signatures.install()
    streaming.install()
    observe.install()
    scope.HISTORY_SIZE = int(options.get("history_size", scope.HISTORY_SIZE))
    refs.IMPORTABLE = tuple(str(root) for root in options.get("importable", refs.IMPORTABLE))
    _freeze()


def _freeze():
    """Moves every object alive now (modules, classes, functions: what `import dspy` and the
    LM client stack built, hundreds of thousands) out of the collector's reach. They live as
    long as the interpreter anyway; left in, each full collection walked them all while
    holding the GIL (230 ms here after the warm-up, every few thousand LM calls). Only while
    no session exists: a session's objects must stay collectable."""
    import gc

    if not LIVE_SESSIONS:
        gc.freeze()


def open_session(sid, name, lm_spec):
    try:
        return (True, Session(sid, name, lm_spec))
    except BaseException as exc:  # noqa: BLE001
        return (False, errors.describe(exc, lms.secrets_of(lm_spec)))


def call(session, op, args):
    try:
        if op not in OPS:
            raise BridgeError("invalid_argument", f"unknown operation {quote(op)}")
        if session.closed:
            raise BridgeError("closed", f"{session.label()} is closed")
        with scope.of(session):
            return (True, OPS[op](session, args))
    except Unrepresentable as exc:
        return (False, errors.describe(BridgeError("python_error", str(exc)), _secrets(session, op, args)))
    except BaseException as exc:  # noqa: BLE001  (SystemExit & co. must not kill a worker)
        return (False, errors.describe(exc, _secrets(session, op, args)))


def _secrets(session, op, args):
    # A failing configure may echo the new spec's key as well as the old one's.
    new = lms.secrets_of(args.get("lm")) if op == "configure" and isinstance(args, dict) else ()
    return tuple(session.lm.secrets) + tuple(new)


def release(session):
    try:
        session.close()
    except BaseException:  # noqa: BLE001
        pass


def release_ref(session, number):
    """Drops one object the session held for Elixir (its %Ref{} was collected)."""
    try:
        refs.release(session, number)
    except BaseException:  # noqa: BLE001
        pass


def stats():
    sessions = list(LIVE_SESSIONS)
    return {"sessions": len(sessions), "programs": len(LIVE_PROGRAMS), "refs": sum(len(s.refs) for s in sessions)}


def global_call(op, args):
    try:
        if op == "ping":
            return (True, args)
        if op == "stats":
            if args and args.get("gc"):
                import gc

                gc.collect()
            return (True, stats())
        if op == "test_eval" and _TEST_HOOKS:
            return (True, _test_eval(args))
        raise BridgeError("invalid_argument", f"unknown operation {quote(op)}")
    except Unrepresentable as exc:
        return (False, errors.describe(BridgeError("python_error", str(exc))))
    except BaseException as exc:  # noqa: BLE001
        return (False, errors.describe(exc))


def _test_eval(source):
    """Test hook (only with `test_hooks: true`): runs source, returns its `result`."""
    namespace = {"__name__": "dspex_test_eval"}
    exec(compile(source, "<test_eval>", "exec"), namespace)  # noqa: S102
    return to_plain(namespace.get("result"))


def warm():
    """Import litellm (5-6 s) so that a user's first real LM call does not pay for it.
    Returns None, or why the import failed (the runtime reports it; a later LM call would
    fail the same way and say so).

    Through DSPy's own lazy import, which holds a lock for the whole import: an LM call
    made meanwhile waits for it. A plain `import litellm` here would let such a call find
    the half-imported module in sys.modules and fail ("partially initialized module").

    The import holds the GIL most of the time: a shorter switch interval meanwhile lets a
    call that arrives get it within a millisecond instead of five."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.001))
    try:
        from dspy.clients._litellm import get_litellm

        get_litellm(feature="dspex_native's warm-up")
        _freeze()
        return None
    except BaseException as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    finally:
        sys.setswitchinterval(interval)


def environment():
    return {"prefix": sys.prefix, "version": sys.version.split()[0], "dspy": dspy.__version__}
