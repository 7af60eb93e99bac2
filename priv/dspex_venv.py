"""The Python side of dspex_native's install: one implementation for `mix dspex_native.setup`,
`mix dspex_native.doctor`, the NIF's compile step and the Makefile. Standard library only: it
runs before any venv exists.

    python3 dspex_venv.py build-python
        The interpreter the NIF links against (its libpython): this one, resolved past shims
        and venvs. Fails when it has no shared libpython.
    python3 dspex_venv.py setup VENV [--requirements FILE] [--installer auto|uv|pip] [--force] [--quiet]
        Creates or updates VENV with this interpreter from the pinned requirements. A stamp
        (requirements hash + Python version) makes a second run a no-op.
    VENV/bin/python dspex_venv.py inspect [--requirements FILE]
        key=value lines about the running interpreter: version, prefix, libpython, dspy, stamp.
"""

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS = os.path.join(HERE, "python", "requirements.txt")
STAMP = ".dspex-requirements"
# uv when it is not on PATH: installed once per machine from PyPI (about 2 s) into a cache of
# ours. Measured here for the pinned set (78 packages): pip 35-40 s cold or warm (it
# byte-compiles everything), uv about 2 s cold and 1 s warm.
UV_VERSION = "0.13.8"


def say(text):
    print(text, flush=True)


def base_executable():
    # A venv's python reports its base interpreter here; a pyenv shim has already exec'd it.
    return getattr(sys, "_base_executable", None) or sys.executable


def libpython():
    """The shared libpython of the running interpreter, resolved, or None."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return None
    name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")
    path = os.path.join(sysconfig.get_config_var("LIBDIR") or "", name or "")
    return os.path.realpath(path) if os.path.exists(path) else None


def stamp_for(requirements):
    with open(requirements, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    return f"{digest} {platform.python_version()}"


def describe(stamp):
    digest, _, version = stamp.partition(" ")
    return f"requirements {digest}, Python {version}"


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def venv_version(venv):
    for line in (read(os.path.join(venv, "pyvenv.cfg")) or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return value.strip()
    return None


def cmd_build_python(_args):
    if libpython() is None:
        sys.exit(
            f"{base_executable()} (Python {platform.python_version()}) has no shared libpython, "
            "which the NIF needs: use a Python built with --enable-shared (pyenv: "
            "PYTHON_CONFIGURE_OPTS=--enable-shared; Debian: libpython3-dev), or set PYO3_PYTHON"
        )
    print(base_executable())


def cmd_inspect(args):
    facts = {
        "version": platform.python_version(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "base_executable": base_executable(),
        "libpython": libpython() or "",
        "dspy": "",
        "stamp": "missing",
    }
    try:
        from importlib import metadata

        facts["dspy"] = metadata.version("dspy")
    except Exception:
        pass
    if sys.prefix != sys.base_prefix:
        have = read(os.path.join(sys.prefix, STAMP))
        if have is not None:
            facts["stamp"] = "ok" if have == stamp_for(args.requirements) else "stale"
    for key, value in facts.items():
        print(f"{key}={value}")


def run(argv, **kwargs):
    subprocess.run(argv, check=True, **kwargs)


def tools_dir():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "dspex_native", f"uv-{UV_VERSION}")


def find_uv():
    """uv on PATH, or ours in the cache, installed there with pip on first use; else None."""
    found = shutil.which("uv")
    if found:
        return found
    target = tools_dir()
    uv = os.path.join(target, "bin", "uv")
    if os.access(uv, os.X_OK):
        return uv
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    if probe.returncode != 0:
        return None
    say(f"==> installing uv {UV_VERSION} from PyPI into {target} (once per machine)")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    staging = tempfile.mkdtemp(dir=os.path.dirname(target), prefix=".uv-")
    try:
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        quiet = dict(os.environ, PIP_ROOT_USER_ACTION="ignore")
        run(pip + ["--target", staging, f"uv=={UV_VERSION}"], env=quiet)
        # Atomic: a concurrent setup either sees the whole tools dir or installs its own.
        os.rename(staging, target)
    except (subprocess.CalledProcessError, OSError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        if not os.access(uv, os.X_OK):
            say(f"    could not install uv ({e}); using pip")
            return None
    return uv


def prepare(venv, with_pip):
    """Makes `venv` a venv of this Python, keeping one that already is."""
    if venv_version(venv) == platform.python_version() and os.path.exists(
        os.path.join(venv, "bin", "python")
    ):
        say(f"==> updating the venv at {venv}")
        return
    if os.path.exists(venv):
        # Never delete what is not a venv: a mistyped --path must not cost a directory.
        if not os.path.exists(os.path.join(venv, "pyvenv.cfg")) and os.listdir(venv):
            sys.exit(f"{venv} exists and is not a venv; choose another path or remove it")
        say(f"==> replacing the venv at {venv} (made by Python {venv_version(venv)})")
        shutil.rmtree(venv)
    say(f"==> creating a venv at {venv} with {base_executable()} (Python {platform.python_version()})")
    run([base_executable(), "-m", "venv"] + ([] if with_pip else ["--without-pip"]) + [venv])


def install_with_uv(uv, venv, requirements):
    version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.strip()
    say(f"==> installing the pinned requirements with {version or 'uv'}")
    python = os.path.join(venv, "bin", "python")
    run([uv, "pip", "install", "--python", python, "-r", requirements], stderr=subprocess.STDOUT)


def install_with_pip(venv, requirements):
    python = os.path.join(venv, "bin", "python")
    if subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        run([python, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
    say("==> installing the pinned requirements with pip (about a minute)")
    flags = ["--disable-pip-version-check", "--progress-bar", "off"]
    run([python, "-m", "pip", "install"] + flags + ["-r", requirements], stderr=subprocess.STDOUT)


def cmd_setup(args):
    started = time.monotonic()
    venv = os.path.abspath(args.venv)
    want = stamp_for(args.requirements)
    current = os.path.exists(os.path.join(venv, "bin", "python"))
    if current and read(os.path.join(venv, STAMP)) == want and not args.force:
        if not args.quiet:
            say(f"dspex_native: the Python environment at {venv} is up to date ({describe(want)})")
        return
    uv = find_uv() if args.installer in ("auto", "uv") else None
    if args.installer == "uv" and uv is None:
        sys.exit("uv is not on PATH and could not be installed with pip")
    prepare(venv, with_pip=uv is None)
    stamp = os.path.join(venv, STAMP)
    if os.path.exists(stamp):
        os.remove(stamp)
    if uv is not None:
        install_with_uv(uv, venv, args.requirements)
    else:
        install_with_pip(venv, args.requirements)
    with open(stamp, "w") as f:
        f.write(want + "\n")
    say(f"==> the Python environment at {venv} is ready ({time.monotonic() - started:.1f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build-python").set_defaults(run=cmd_build_python)
    inspect = sub.add_parser("inspect")
    inspect.add_argument("--requirements", default=REQUIREMENTS)
    inspect.set_defaults(run=cmd_inspect)
    setup = sub.add_parser("setup")
    setup.add_argument("venv")
    setup.add_argument("--requirements", default=REQUIREMENTS)
    setup.add_argument("--installer", choices=["auto", "uv", "pip"], default="auto")
    setup.add_argument("--force", action="store_true")
    setup.add_argument("--quiet", action="store_true", help="say nothing when up to date")
    setup.set_defaults(run=cmd_setup)
    args = parser.parse_args()
    try:
        args.run(args)
    except subprocess.CalledProcessError as e:
        sys.exit(f"dspex_native: {' '.join(map(str, e.cmd))} failed (exit {e.returncode})")


if __name__ == "__main__":
    main()
