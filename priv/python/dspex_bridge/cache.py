"""LM response caches that belong to sessions.

DSPy keeps one process-wide response cache (in memory, and on disk under the user's home)
whose key leaves out `api_key`, `api_base` and `base_url`: two sessions with different
servers or keys, same model and prompt, would get each other's answers, and every prompt
and answer would be written to disk. Here `dspy.cache` is a `Router`: each LM call is
looked up in the cache its LM's policy names, under a key that always includes the LM's
endpoint and a hash of its credentials:

- `"session"` (the default): the calling session's own cache, in memory, `SESSION_ENTRIES`
  answers, freed with the session;
- `"shared"`: one in-memory cache for every session that opts in;
- `("disk", directory)`: a disk cache in a directory the user named;
- `False`: no caching.

DSPy's own disk cache is never built (it is created lazily, on the first read of
`dspy.cache`, which the router replaces before any call).
"""

import contextvars
import hashlib
import threading

from dspy.clients import execution
from dspy.clients.cache import Cache

from . import scope
from .errors import BridgeError, quote

SESSION_ENTRIES = 100
SHARED_ENTRIES = 10_000
DISK_BYTES = 1 << 30

POLICY_ATTR = "_dspex_cache"
DEFAULT_POLICY = "session"

# Request keys that locate the server or carry credentials: DSPy leaves them out of its key;
# here the endpoint goes in as it is and the credentials as a hash.
_ENDPOINT_KEYS = ("api_base", "base_url", "api_version")
_SECRET_WORDS = ("key", "token", "secret", "password", "auth", "header")
_IGNORED = ["api_key", "api_base", "base_url"]

# The LM whose call is being looked up, set around DSPy's cache lookups (dspy.cache.get has
# no LM argument).
_CALLING_LM = contextvars.ContextVar("dspex_calling_lm", default=None)


def policy(value):
    """A cache policy from the LM option `cache:` (true, false, :session, :shared, {:disk, dir})."""
    if value is True or value in ("session", "shared"):
        return DEFAULT_POLICY if value is True else str(value)
    if value is False or value is None:
        return False
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == "disk":
        directory = value[1]
        if isinstance(directory, str) and directory.strip() and "\0" not in directory:
            return ("disk", str(directory))
    raise BridgeError(
        "invalid_argument", "the LM option cache must be true, false, :session, :shared or {:disk, directory}"
    )


def new_session_store():
    return Cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None, memory_max_entries=SESSION_ENTRIES)


class Router:
    """Stands in for `dspy.cache`: sends each lookup to the store its LM's policy names."""

    def __init__(self):
        self._shared = Cache(
            enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None, memory_max_entries=SHARED_ENTRIES
        )
        self._disks = {}
        self._lock = threading.Lock()

    def get(self, request, ignored_args_for_cache_key=None):
        store, keyed = self._route(request)
        return None if store is None else store.get(keyed, _IGNORED)

    def put(self, request, value, ignored_args_for_cache_key=None, enable_memory_cache=True):
        store, keyed = self._route(request)
        if store is not None:
            store.put(keyed, value, _IGNORED, enable_memory_cache)

    def reset_memory_cache(self):
        session = scope.current()
        if session is not None and session.cache is not None:
            session.cache.reset_memory_cache()

    def _route(self, request):
        lm = _CALLING_LM.get()
        chosen = getattr(lm, POLICY_ATTR, DEFAULT_POLICY) if lm is not None else DEFAULT_POLICY
        store = self._store(chosen)
        if store is None or not isinstance(request, dict):
            return None, None
        return store, {**request, "_dspex_endpoint": _identity(lm, request)}

    def _store(self, chosen):
        if chosen == "session":
            # Only a call made for a session is cached; code in a thread the session's code
            # started, outside any session, is not.
            session = scope.current()
            if session is None:
                return None
            if session.cache is None:
                session.cache = new_session_store()
            return session.cache
        if chosen == "shared":
            return self._shared
        if isinstance(chosen, tuple) and chosen[0] == "disk":
            with self._lock:
                if chosen[1] not in self._disks:
                    # restrict_pickle: a cache directory is outside data; never unpickle code from it.
                    self._disks[chosen[1]] = Cache(
                        enable_disk_cache=True,
                        enable_memory_cache=False,
                        disk_cache_dir=chosen[1],
                        disk_size_limit_bytes=DISK_BYTES,
                        restrict_pickle=True,
                    )
                return self._disks[chosen[1]]
        return None


def _identity(lm, request):
    """The endpoint in clear, the credentials hashed: answers never cross servers or keys."""
    options = {**(getattr(lm, "kwargs", None) or {}), **request} if lm is not None else dict(request)
    endpoint = {k: str(options.get(k)) for k in _ENDPOINT_KEYS if options.get(k) is not None}
    secrets = sorted(
        f"{k}={quote(v)}" for k, v in options.items() if isinstance(k, str) and any(w in k.lower() for w in _SECRET_WORDS)
    )
    digest = hashlib.sha256("\0".join(secrets).encode("utf-8", "surrogatepass")).hexdigest()
    return {"endpoint": endpoint, "model": str(getattr(lm, "model", "")), "credentials": digest}


def install():
    """Replaces `dspy.cache` with the router, and lets it see which LM is calling."""
    import dspy

    if isinstance(dspy.__dict__.get("cache"), Router):
        return  # installed already (the runtime was stopped and started again)
    original_cached, original_store = execution._cached, execution._store

    # A call that is not cached (DummyLM's, `cache: false`) skips the lookup at no cost: this
    # runs twice in every LM call.
    def cached(lm, call, asynchronous):
        if not call.cache:
            return None
        token = _CALLING_LM.set(lm)
        try:
            return original_cached(lm, call, asynchronous)
        finally:
            _CALLING_LM.reset(token)

    def store(lm, call, result, asynchronous):
        if not call.cache:
            return None
        token = _CALLING_LM.set(lm)
        try:
            return original_store(lm, call, result, asynchronous)
        finally:
            _CALLING_LM.reset(token)

    execution._cached, execution._store = cached, store
    with dspy._cache_lock:
        dspy.cache = Router()
