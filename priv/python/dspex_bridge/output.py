"""Python's output during a call goes to the Elixir caller, not to raw file descriptors.

`print`, writes to sys.stdout/sys.stderr (tqdm's progress bars among them) and `logging`
records produced by a job's thread reach the process that made the call: printed text
through its group leader (so iex shows it and ExUnit.CaptureIO catches it), log records
through Logger (with the session in the metadata, so ExUnit.CaptureLog catches them).
Output from any other thread, or from a call that cannot reach its caller, is written as
before.
"""

import io
import logging
import sys

from . import hooks, scope


def _notify(payload):
    notify = hooks.notify_elixir
    return bool(notify and notify(payload, scope.caller()))


class JobStream(io.TextIOBase):
    """Stands in for sys.stdout / sys.stderr."""

    def __init__(self, name, original):
        super().__init__()
        self.name = name
        self.original = original

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            text = str(text)
        if text and _notify({"kind": "output", "stream": self.name, "text": text}):
            return len(text)
        return self.original.write(text)

    def flush(self):
        flush = getattr(self.original, "flush", None)
        if flush:
            flush()

    def isatty(self):
        return False

    def fileno(self):
        return self.original.fileno()


class JobLogHandler(logging.Handler):
    """Sends log records made during a call to the caller's Logger."""

    def emit(self, record):
        try:
            message = self.format(record)
        except Exception:  # noqa: BLE001
            message = record.getMessage() if hasattr(record, "getMessage") else str(record.msg)
        payload = {"kind": "log", "level": record.levelname, "logger": record.name, "message": message}
        if not _notify(payload):
            # No caller: behave like Python's last-resort handler.
            sys.__stderr__.write(message + "\n")


_installed = False


def install():
    global _installed
    if _installed:
        return
    _installed = True
    sys.stdout = JobStream("stdout", sys.stdout)
    sys.stderr = JobStream("stderr", sys.stderr)
    handler = JobLogHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    # Levels stay Python's (the root logger passes WARNING and up unless code changes it):
    # lowering them would flood Logger with every HTTP request httpx logs at INFO.
    logging.getLogger().addHandler(handler)
    # DSPy's own loggers print through a handler bound to the original stderr at import
    # (progress of Evaluate, optimizers): their records go to the caller's Logger instead.
    for name in ("dspy",):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]:
            logger.removeHandler(old)
            routed = JobLogHandler(old.level)
            routed.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(routed)
