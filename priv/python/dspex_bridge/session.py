"""One session's Python state: its programs, its LM and its counters.

The Rust side holds the only strong reference to a `Session`; when the BEAM collects the
session's handle, the pool calls `close()` and drops it, and its programs go with it.
Calls on one session may run on several worker threads at once, so the program table is
guarded by a lock that is never held while a program runs.
"""

import itertools
import threading
import weakref

import dspy

from . import exports, inputs as typed_inputs, lms, modules, refs, signatures, streaming, tools
from .errors import BridgeError, quote
from .values import field_name, to_plain

MODULE_KINDS = {"predict": dspy.Predict, "chain_of_thought": dspy.ChainOfThought}

# Every DSPy module a session creates, by weak reference: stats report what is really alive.
LIVE_PROGRAMS = weakref.WeakSet()
LIVE_SESSIONS = weakref.WeakSet()


class Program:
    __slots__ = ("module", "kind", "spec", "signature", "input_names", "adapter", "__weakref__")

    def __init__(self, module, kind, signature, spec=None):
        self.module = module
        self.signature = signature
        self.adapter = None  # this program's own adapter, over the session's
        # kind is "predict", "chain_of_thought" or ["custom", class name]; spec is the
        # signature as Elixir gave it: both are what export_program needs to rebuild it.
        self.kind = kind
        self.spec = spec
        # A custom module without a signature takes whatever its forward() takes.
        self.input_names = frozenset(signature.input_fields) if signature is not None else None


class Session:
    def __init__(self, sid, name, lm_spec):
        self.id = sid
        self.name = name
        self.lm = lms.build(lm_spec)
        self.programs = {}
        # Python source loaded with load_module runs here: only this session sees it.
        self.namespace = {}
        self.modules = []
        self.executions = 0
        self.failures = 0
        self.usage = {}
        # What this session's code passed to dspy.configure (see scope.py), and its LM cache.
        self.settings = {}
        self.cache = None
        # Python objects Elixir holds as %DSPex.Native.Ref{} (see refs.py), by number.
        self.refs = {}
        self._ref_numbers = itertools.count(1)
        # What dspy.inspect_history() shows in this session (DSPy's global history, per session).
        self.lm_history = []
        self.closed = False
        self._lock = threading.Lock()
        LIVE_SESSIONS.add(self)

    def __repr__(self):
        return f"<dspex Session {self.id} {quote(self.name)}>"

    def new_ref_number(self):
        return next(self._ref_numbers)

    def label(self):
        return f"session {self.id}" + (f" {quote(self.name)}" if self.name else "")

    # -- operations (the op names Elixir sends) ------------------------------------------

    def configure(self, args):
        # Only the settings given change: the LM, the adapter (nil: DSPy's default).
        lm = lms.build(args["lm"]) if "lm" in args else self.lm
        if "adapter" in args:
            adapter = lms.adapter(args["adapter"], lm)
            with self._lock:
                self.settings = {k: v for k, v in self.settings.items() if k != "adapter"}
                if adapter is not None:
                    self.settings["adapter"] = adapter
        self.lm = lm
        return None

    def apply_settings(self, settings):
        """What this session's Python passed to `dspy.configure`: its own from now on."""
        with self._lock:
            if "lm" in settings:
                self.lm = lms.from_object(settings.pop("lm"))
            self.settings = {**self.settings, **settings}

    def load_module(self, args):
        """Runs Python source in this session's namespace (full trust: it is Python)."""
        source = args.get("source")
        if not isinstance(source, str):
            raise BridgeError("invalid_argument", "the module source must be a string")
        return modules.load(self, str(args.get("name") or "module"), source)

    def _custom_class(self, name):
        cls = self.namespace.get(name)
        if not (isinstance(cls, type) and issubclass(cls, dspy.Module)):
            raise BridgeError(
                "not_found", f"no dspy.Module subclass {quote(name)} loaded in {self.label()} (see load_module)"
            )
        return cls

    def _build_program(self, kind, spec, options=None):
        program = self._new_program(kind, spec, options or {})
        if program.signature is not None:
            signatures.check_reserved(program.signature, program.kind)
        return program

    def _new_program(self, kind, spec, options):
        if kind == "react":
            signature = signatures.build(spec)
            timeout = options.get("tool_timeout", refs.CALLBACK_TIMEOUT_MS) / 1000
            agent_tools = [tools.tool(t, timeout) for t in options.get("tools") or []]
            if not agent_tools:
                raise BridgeError("invalid_argument", "a :react program needs at least one tool")
            module = dspy.ReAct(signature, tools=agent_tools, max_iters=int(options.get("max_iters") or 10))
            return Program(module, kind, signature, spec)
        if isinstance(kind, (list, tuple)) and len(kind) == 2 and kind[0] == "custom":
            signature = signatures.build(spec) if spec is not None else None
            cls = self._custom_class(kind[1])
            module = cls(signature) if signature is not None else cls()
            return Program(module, ["custom", str(kind[1])], signature, spec)
        if kind in MODULE_KINDS:
            signature = signatures.build(spec)
            return Program(MODULE_KINDS[kind](signature), kind, signature, spec)
        raise BridgeError(
            "invalid_argument",
            f"module {quote(kind)} is not supported; use :predict, :chain_of_thought, :react or {{:custom, name}}",
        )

    def _install(self, pid, program, replace):
        with self._lock:
            if pid in self.programs and not replace:
                raise BridgeError("already_exists", f"program {quote(pid)} already exists in {self.label()}")
            self.programs[pid] = program
        LIVE_PROGRAMS.add(program.module)

    def export_program(self, args):
        """The program's state as plain data: module kind, signature, demos, instructions."""
        program = self._program(args["id"])
        if program.kind == "react":
            raise BridgeError(
                "invalid_argument", "a :react program calls Elixir functions and cannot be exported"
            )
        return exports.export(program)

    def import_program(self, args):
        # The export is untrusted: checked whole, and only its checked parts reach DSPy.
        exported = args.get("exported")
        module, spec = exports.header(exported)
        program = self._build_program(module, spec)
        state = exports.clean_state(exported.get("state"), program.module)
        try:
            program.module.load_state(state)
        except Exception as exc:  # noqa: BLE001
            raise BridgeError("invalid_argument", f"the exported state does not fit this program: {exc}") from exc
        self._install(args["id"], program, args.get("replace"))
        return None

    def _program(self, pid):
        program = self.programs.get(pid)
        if program is None:
            raise BridgeError("not_found", f"no program {quote(pid)} in {self.label()}")
        return program

    def put_program(self, args):
        """Makes a `dspy.Module` the session holds by reference one of its programs."""
        module = refs.get(self, args.get("ref"))
        if not isinstance(module, dspy.Module):
            raise BridgeError("invalid_argument", f"a program must be a dspy.Module, got a {type(module).__name__}")
        signature = getattr(module, "signature", None)
        signature = signature if isinstance(signature, type) and issubclass(signature, dspy.Signature) else None
        program = Program(module, ["ref", type(module).__name__], signature)
        if signature is not None:
            signatures.check_reserved(signature, program.kind)
        self._install(args["id"], program, args.get("replace"))
        return None

    def create_program(self, args):
        program = self._build_program(args.get("module", "predict"), args.get("signature"), args)
        program.adapter = lms.adapter(args.get("adapter"), self.lm)
        self._install(args["id"], program, args.get("replace"))
        return None

    def execute(self, args):
        return self._run(args, lambda module, inputs: module(**inputs))

    def stream(self, args):
        """As execute, sending the caller each piece of the streamed fields as it comes."""
        return self._run(args, lambda module, inputs: streaming.run(module, inputs, args))

    def _run(self, args, call):
        pid = args["id"]
        program = self._program(pid)
        raw_inputs = args.get("inputs")
        if not isinstance(raw_inputs, dict):
            raise BridgeError("invalid_argument", "inputs must be a map")
        inputs = {}
        for key, value in raw_inputs.items():
            try:
                inputs[field_name(key, "input")] = value
            except TypeError as exc:
                raise BridgeError("invalid_argument", str(exc)) from None
        reserved = signatures.reserved(program.kind).keys() & inputs.keys()
        if reserved:
            raise BridgeError(
                "invalid_argument",
                f"program {quote(pid)}: input(s) {', '.join(sorted(reserved))} are reserved (DSPy control arguments)",
            )
        names = program.input_names if program.input_names is not None else inputs.keys()
        missing = sorted(names - inputs.keys())
        unknown = sorted(inputs.keys() - names)
        if missing or unknown:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing))
            if unknown:
                parts.append("unknown " + ", ".join(unknown))
            raise BridgeError(
                "invalid_argument",
                f"program {quote(pid)} takes inputs {', '.join(sorted(program.input_names))}: {'; '.join(parts)}",
            )
        lm = self.lm
        # A custom module may need no LM at all; it fails below if it calls one.
        if lm.lm is None and not isinstance(program.kind, list):
            raise BridgeError("no_lm", self._no_lm())
        try:
            typed = typed_inputs.convert(program.signature, inputs)
            if program.adapter is None:
                prediction = call(program.module, typed)
            else:
                with dspy.context(adapter=program.adapter):
                    prediction = call(program.module, typed)
            result = to_plain(prediction)
        except BaseException as exc:
            with self._lock:
                self.failures += 1
            if lm.lm is None and isinstance(exc, ValueError) and "No LM is loaded" in str(exc):
                raise BridgeError("no_lm", f"program {quote(pid)} called an LM, but {self._no_lm()}") from None
            raise
        with self._lock:
            self.executions += 1
        return result

    def compile(self, args):
        """Optimises a program against a trainset (a list of maps) with DSPy's optimizers;
        the compiled program replaces the original or is stored under `as`."""
        from dspy.teleprompt import BootstrapFewShot, LabeledFewShot

        pid = args["id"]
        program = self._program(pid)
        if program.kind == "react" or program.input_names is None:
            raise BridgeError("invalid_argument", f"program {quote(pid)} cannot be compiled (it has no fixed inputs)")
        trainset = args.get("trainset")
        if not isinstance(trainset, list) or not trainset or not all(isinstance(e, dict) for e in trainset):
            raise BridgeError("invalid_argument", "trainset must be a non-empty list of maps")
        inputs = sorted(program.input_names)
        examples = []
        for n, raw in enumerate(trainset):
            fields = {field_name(k, "trainset field"): v for k, v in raw.items()}
            if missing := [i for i in inputs if i not in fields]:
                raise BridgeError("invalid_argument", f"trainset[{n}] lacks input(s) {', '.join(missing)}")
            examples.append(dspy.Example(**fields).with_inputs(*inputs))
        options = args.get("options") or {}
        metric = tools.metric(args.get("metric"), options.get("metric_timeout", refs.CALLBACK_TIMEOUT_MS) / 1000)
        optimizer = args.get("optimizer", "labeled_few_shot")
        if optimizer == "labeled_few_shot":
            teleprompter = LabeledFewShot(k=int(options.get("k", 16)))
        elif optimizer == "bootstrap_few_shot":
            if metric is None:
                raise BridgeError("invalid_argument", ":bootstrap_few_shot needs a metric")
            teleprompter = BootstrapFewShot(
                metric=metric,
                max_bootstrapped_demos=int(options.get("max_bootstrapped_demos", 4)),
                max_labeled_demos=int(options.get("max_labeled_demos", 16)),
                max_errors=int(options.get("max_errors", 5)),
            )
        else:
            raise BridgeError(
                "invalid_argument", f"optimizer {quote(optimizer)}: use :labeled_few_shot or :bootstrap_few_shot"
            )
        lm = self.lm
        if optimizer != "labeled_few_shot" and lm.lm is None:
            raise BridgeError("no_lm", f"{self.label()} has no LM to bootstrap with")
        compiled = teleprompter.compile(program.module, trainset=examples)
        target = args.get("as") or pid
        optimised = Program(compiled, program.kind, None, program.spec)
        optimised.input_names = program.input_names
        self._install(target, optimised, True)
        demos = sum(len(getattr(p, "demos", [])) for _, p in compiled.named_predictors())
        return {"id": target, "demos": demos}

    def _no_lm(self):
        return f"{self.label()} has no LM: open it with lm: ... or call configure(session, lm: ...)"

    def add_usage(self, entry):
        """Adds one LM call's token counts (a history entry) to the session's totals. Read
        from DSPy's history, which every call writes, rather than DSPy's usage tracker,
        which would cost every execute a tracker."""
        usage = entry.get("usage")
        if not isinstance(usage, dict):
            return
        model = str(entry.get("model") or "")
        with self._lock:
            totals = self.usage.setdefault(model, {})
            for key, value in usage.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    totals[key] = totals.get(key, 0) + value

    def history(self, args):
        """The session's last n LM calls, newest last: messages, outputs, model, usage."""
        n = args.get("n", 1)
        if not isinstance(n, int) or n < 0:
            raise BridgeError("invalid_argument", "n must be a non-negative integer")
        lm = self.lm.lm
        entries = list(getattr(lm, "history", []) or [])[-n:] if n else []
        return [
            {
                "model": e.get("model"),
                "messages": e.get("messages"),
                "outputs": e.get("outputs"),
                "usage": dict(e.get("usage") or {}),
                "cost": e.get("cost"),
                "timestamp": e.get("timestamp"),
            }
            for e in entries
        ]

    def list_programs(self, _args):
        return sorted(self.programs)

    def delete_program(self, args):
        pid = args["id"]
        with self._lock:
            if self.programs.pop(pid, None) is None:
                raise BridgeError("not_found", f"no program {quote(pid)} in {self.label()}")
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
            "usage": {model: dict(counts) for model, counts in self.usage.items()},
        }

    def close(self):
        """Drop every Python object this session holds. Called by the pool, never by users."""
        with self._lock:
            self.closed = True
            self.programs = {}
            self.namespace = {}
            modules.unload(self)
            self.settings = {}
            self.cache = None
            self.refs = {}
            self.lm_history = []
        self.lm = lms.LMConfig()


# The operations Elixir may ask of a session, by the name it sends.
OPS = {
    **{
        name: getattr(Session, name)
        for name in (
            "configure", "create_program", "put_program", "execute", "stream", "list_programs", "delete_program",
            "reset", "info", "load_module", "history", "export_program", "import_program", "compile",
        )
    },
    "py_call": refs.py_call,
    "py_method": refs.py_method,
    "py_attr": refs.py_attr,
    "py_set_attr": refs.py_set_attr,
}  # fmt: skip
