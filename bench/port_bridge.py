"""Benchmark baseline: the Erlang-port bridge that dspex_native replaces.

One Python process spoken to over stdin/stdout with Erlang's {:packet, 4}
framing (4-byte big-endian length + JSON body). A single loop reads a request,
runs it and writes the answer, so requests are served strictly one at a time,
in order, against one global dict of programs - as the old DSPex bridge did.

Request:  {"id": int, "command": str, "args": {...}}
Answer:   {"id": int, "ok": true, "result": ...} | {"id": int, "ok": false, "error": str}
"""

import json
import os
import struct
import sys

# Frames are the only thing allowed on the real stdout: keep a handle to it and
# send every print (ours, dspy's, litellm's) to stderr instead.
_OUT = sys.stdout.buffer
_IN = sys.stdin.buffer
sys.stdout = sys.stderr

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import dspy  # noqa: E402  (imported up front: start-up cost is paid before the first ping)

PROGRAMS = {}  # id -> (dspy.Predict, lm): the one global registry


def make_lm(spec):
    kind = spec.get("kind")
    if kind == "dummy":
        return dspy.utils.DummyLM(spec.get("answers", {"": {"answer": "x"}}))
    if kind == "lm":
        return dspy.LM(spec["model"], **spec.get("kwargs", {}))
    raise ValueError(f"unknown lm kind: {kind!r}")


def create_program(args):
    pid = args["id"]
    if pid in PROGRAMS:
        raise ValueError("Program already exists")
    PROGRAMS[pid] = (dspy.Predict(args["signature"]), make_lm(args["lm"]))
    return {"id": pid}


def execute(args):
    try:
        program, lm = PROGRAMS[args["id"]]
    except KeyError:
        raise ValueError(f"Program not found: {args['id']}") from None
    with dspy.context(lm=lm, trace=[]):
        return program(**args.get("inputs", {})).toDict()


def delete_program(args):
    if PROGRAMS.pop(args["id"], None) is None:
        raise ValueError(f"Program not found: {args['id']}")
    return {"id": args["id"]}


def reset(_args):
    PROGRAMS.clear()
    return {"programs": 0}


COMMANDS = {
    "ping": lambda args: args,
    "create_program": create_program,
    "execute": execute,
    "delete_program": delete_program,
    "reset": reset,
    "stats": lambda _args: {"programs": len(PROGRAMS)},
}


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = _IN.read(n - len(buf))
        if not chunk:
            return None  # EOF: the port was closed
        buf += chunk
    return buf


def write_frame(obj):
    # Compact, "id" first: the Elixir side routes on the `{"id":N,` prefix.
    # default=str: predictions may hold values json cannot encode natively.
    body = json.dumps(obj, separators=(",", ":"), default=str).encode()
    _OUT.write(struct.pack(">I", len(body)) + body)
    _OUT.flush()


def main():
    while True:
        head = read_exact(4)
        if head is None:
            return
        body = read_exact(struct.unpack(">I", head)[0])
        if body is None:
            return
        rid = None
        try:
            req = json.loads(body)
            rid = req.get("id")
            handler = COMMANDS.get(req.get("command"))
            if handler is None:
                raise ValueError(f"unknown command: {req.get('command')!r}")
            reply = {"id": rid, "ok": True, "result": handler(req.get("args") or {})}
        except Exception as e:  # every failure is an answer, never a crash
            reply = {"id": rid, "ok": False, "error": str(e) or type(e).__name__}
        write_frame(reply)


if __name__ == "__main__":
    main()
