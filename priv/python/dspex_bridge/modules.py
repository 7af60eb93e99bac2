"""Python source loaded into a session (`load_module`).

Each load becomes a real module object with its own file name, whose source is registered
in `linecache`: `inspect.getsource` (which `dspy.Refine`, SIMBA and MIPROv2's proposer call
on user code) and tracebacks can read it, with no file on disk. The names a load defines
join the session's namespace, so a later load can use an earlier one's classes; another
session never sees them. Closing the session unregisters its modules.
"""

import itertools
import linecache
import sys
import types

import dspy

_numbers = itertools.count(1)


def load(session, name, source):
    """Runs `source` as a new module of `session`; the names of its dspy.Module classes."""
    number = next(_numbers)
    module_name = f"dspex_session_{session.id}_{number}"
    filename = f"<dspex session {session.id} module {name} #{number}>"
    module = types.ModuleType(module_name)
    module.__dict__.update({k: v for k, v in session.namespace.items() if not k.startswith("__")})
    module.__file__ = filename
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    # mtime None: linecache.checkcache keeps the entry (there is no file to compare with).
    linecache.cache[filename] = (len(source), None, lines, filename)
    sys.modules[module_name] = module
    session.modules.append((module_name, filename))
    try:
        exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102  (documented: full trust)
    finally:
        session.namespace.update({k: v for k, v in module.__dict__.items() if not k.startswith("__")})
    own = {m for m, _ in session.modules}
    return sorted(
        key
        for key, value in session.namespace.items()
        if isinstance(value, type) and issubclass(value, dspy.Module) and value.__module__ in own
    )


def unload(session):
    """Forgets a closed session's modules and their source."""
    for module_name, filename in session.modules:
        sys.modules.pop(module_name, None)
        linecache.cache.pop(filename, None)
    session.modules = []
