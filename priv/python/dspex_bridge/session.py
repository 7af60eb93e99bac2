"""One session's Python state: its programs, its LM and its counters.

The Rust side holds the only strong reference to a `Session`; when the BEAM collects the
session's handle, the pool calls `close()` and drops it, and its programs go with it.
Calls on one session may run on several worker threads at once, so the program table is
guarded by a lock that is never held while a program runs.
"""

import threading
import weakref

import dspy

from . import lms, signatures
from .errors import BridgeError
from .values import field_name, to_plain

MODULE_KINDS = {"predict": dspy.Predict, "chain_of_thought": dspy.ChainOfThought}

# LM calls each LM and program remembers (DSPy's default, 10,000 per object, grows a
# long-lived session by megabytes); set by the runtime's `history_size`.
HISTORY_SIZE = 100

# Every DSPy module a session creates, by weak reference: stats report what is really alive.
LIVE_PROGRAMS = weakref.WeakSet()
LIVE_SESSIONS = weakref.WeakSet()


class Program:
    __slots__ = ("module", "kind", "input_names", "__weakref__")

    def __init__(self, module, kind, signature):
        self.module = module
        self.kind = kind
        self.input_names = frozenset(signature.input_fields)


class Session:
    def __init__(self, sid, name, lm_spec):
        self.id = sid
        self.name = name
        self.lm = lms.build(lm_spec)
        self.programs = {}
        self.executions = 0
        self.failures = 0
        self.closed = False
        self._lock = threading.Lock()
        LIVE_SESSIONS.add(self)

    def __repr__(self):
        return f"<dspex Session {self.id} {self.name!r}>"

    def label(self):
        return f"session {self.id}" + (f" {self.name!r}" if self.name else "")

    # -- operations (the op names Elixir sends) ------------------------------------------

    def configure(self, args):
        # Only the settings given change; today that is the LM.
        if "lm" in args:
            self.lm = lms.build(args["lm"])
        return None

    def create_program(self, args):
        pid = args["id"]
        kind = args.get("module", "predict")
        if kind not in MODULE_KINDS:
            raise BridgeError(
                "invalid_argument",
                f"module {kind!r} is not supported; use :predict or :chain_of_thought",
            )
        signature = signatures.build(args.get("signature"))
        module = MODULE_KINDS[kind](signature)
        with self._lock:
            if pid in self.programs and not args.get("replace"):
                raise BridgeError("already_exists", f"program {pid!r} already exists in {self.label()}")
            self.programs[pid] = Program(module, kind, signature)
        LIVE_PROGRAMS.add(module)
        return None

    def execute(self, args):
        pid = args["id"]
        program = self.programs.get(pid)
        if program is None:
            raise BridgeError("not_found", f"no program {pid!r} in {self.label()}")
        raw_inputs = args.get("inputs")
        if not isinstance(raw_inputs, dict):
            raise BridgeError("invalid_argument", "inputs must be a map")
        inputs = {}
        for key, value in raw_inputs.items():
            try:
                inputs[field_name(key, "input")] = value
            except TypeError as exc:
                raise BridgeError("invalid_argument", str(exc)) from None
        missing = sorted(program.input_names - inputs.keys())
        unknown = sorted(inputs.keys() - program.input_names)
        if missing or unknown:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing))
            if unknown:
                parts.append("unknown " + ", ".join(unknown))
            raise BridgeError(
                "invalid_argument",
                f"program {pid!r} takes inputs {', '.join(sorted(program.input_names))}: {'; '.join(parts)}",
            )
        lm = self.lm
        if lm.lm is None:
            raise BridgeError(
                "no_lm", f"{self.label()} has no LM: open it with lm: ... or call configure(session, lm: ...)"
            )
        try:
            # A fresh trace per call: DSPy's global trace would keep every module alive.
            with dspy.context(lm=lm.lm, trace=[], max_history_size=HISTORY_SIZE):
                prediction = program.module(**inputs)
            result = to_plain(prediction)
        except BaseException:
            with self._lock:
                self.failures += 1
            raise
        with self._lock:
            self.executions += 1
        return result

    def list_programs(self, _args):
        return sorted(self.programs)

    def delete_program(self, args):
        pid = args["id"]
        with self._lock:
            if self.programs.pop(pid, None) is None:
                raise BridgeError("not_found", f"no program {pid!r} in {self.label()}")
        return None

    def reset(self, _args):
        with self._lock:
            self.programs = {}
        return None

    def info(self, _args):
        return {
            "id": self.id,
            "name": self.name,
            "programs": len(self.programs),
            "executions": self.executions,
            "failures": self.failures,
            "lm": self.lm.model,
        }

    def close(self):
        """Drop every Python object this session holds. Called by the pool, never by users."""
        with self._lock:
            self.closed = True
            self.programs = {}
        self.lm = lms.LMConfig()


OPS = frozenset({"configure", "create_program", "execute", "list_programs", "delete_program", "reset", "info"})
