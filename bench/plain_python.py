"""Benchmark floor: the same DSPy work timed inside one Python process, no bridge.

    plain_python.py serve         a long-lived process the bench drives round by round
    plain_python.py import_time   -> {"import_dspy_s"}: a cold `import dspy`, then exit

`serve` reads one JSON request per line on stdin and answers one JSON line on stdout
(all other output goes to stderr). It stays warm between rounds, as dspex_native's
interpreter does, so a round measures the work, not an import:

    {"cmd": "predict", "n": N, "warm": W}            -> {"p50_us", "p99_us"}
    {"cmd": "lm_cpu", "url": U, "n": N}              -> {"cpu_ms_per_call", "wall_ms_per_call"}
    {"cmd": "lm_threads", "url": U, "threads": T}    -> {"threads"}: T threads, warm, waiting
    {"cmd": "lm_round", "seconds": S}                -> {"calls_per_s"}: one round of those threads
    {"cmd": "lm_stop"}                               -> {}: the threads exit
    {"cmd": "streams", "url": U, "streams": N}       -> {"first_chunk_ms_p50", "chunks_per_s"}
"""

import json
import os
import sys
import threading
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

QUESTION = "What is 2+2?"


def loopback_lm(dspy, url):
    # Same settings the bridges use: no cache, no retries - every call hits the server.
    return dspy.LM("openai/gpt-4o-mini", api_base=url, api_key="test", cache=False, num_retries=0)


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def median(values):
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


class Server:
    def __init__(self):
        import dspy

        self.dspy = dspy
        self.dummy = dspy.utils.DummyLM({"": {"answer": "x"}})
        self.predictor = dspy.Predict("question -> answer")
        self.pool = None

    def predict(self, req):
        times = []
        with self.dspy.context(lm=self.dummy, trace=[]):
            for _ in range(req.get("warm", 50)):
                self.predictor(question=QUESTION)
            for _ in range(req["n"]):
                t0 = time.perf_counter_ns()
                self.predictor(question=QUESTION)
                times.append(time.perf_counter_ns() - t0)
        times.sort()
        return {"p50_us": median(times) / 1e3, "p99_us": percentile(times, 0.99) / 1e3}

    def lm_cpu(self, req):
        program = self.dspy.Predict("question -> answer")
        with self.dspy.context(lm=loopback_lm(self.dspy, req["url"]), trace=[]):
            for _ in range(20):  # warm-up: litellm/httpx client set-up, connection pool
                program(question=QUESTION)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for _ in range(req["n"]):
                program(question=QUESTION)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        # CPU time is what holds the GIL: it bounds calls/s of any single-interpreter design.
        return {"cpu_ms_per_call": cpu * 1e3 / req["n"], "wall_ms_per_call": wall * 1e3 / req["n"]}

    def lm_threads(self, req):
        self.lm_stop({})
        self.pool = ThreadPool(self.dspy, loopback_lm(self.dspy, req["url"]), req["threads"])
        return {"threads": req["threads"]}

    def lm_round(self, req):
        return {"calls_per_s": self.pool.round(req["seconds"])}

    def lm_stop(self, _req):
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
        return {}

    def streams(self, req):
        return streams(self.dspy, req["url"], req["streams"])


class ThreadPool:
    """T threads, each with its own program and dspy.context, that run one round at a
    time: as dspex_native's sessions, they are made once and reused round after round."""

    def __init__(self, dspy, lm, threads):
        self.counts = [0] * threads
        self.start = threading.Barrier(threads + 1)
        self.done = threading.Barrier(threads + 1)
        self.deadline = float("inf")
        self.stopping = False

        def worker(i):
            program = dspy.Predict("question -> answer")
            with dspy.context(lm=lm, trace=[]):  # context is per thread
                program(question=QUESTION)  # per-thread warm-up, not counted
                self.done.wait()
                while True:
                    self.start.wait()
                    if self.stopping:
                        return
                    while time.perf_counter() < self.deadline:
                        program(question=QUESTION)
                        self.counts[i] += 1
                    self.done.wait()

        self.threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()
        self.done.wait()  # every thread warm

    def round(self, seconds):
        before = sum(self.counts)
        self.deadline = float("inf")
        self.start.wait()
        t0 = time.perf_counter()
        self.deadline = t0 + seconds
        self.done.wait()
        # Divide by the real elapsed time: calls in flight at the deadline still finish.
        return (sum(self.counts) - before) / (time.perf_counter() - t0)

    def stop(self):
        self.stopping = True
        self.start.wait()
        for t in self.threads:
            t.join()


def streams(dspy, url, n):
    """N threads, each streaming one answer with dspy.streamify at the same time."""
    import asyncio
    import weakref

    import anyio
    from dspy.streaming import StreamListener, StreamResponse
    from dspy.utils import asyncify

    # DSPy's asyncify shares one capacity limiter across event loops; each stream runs its own
    # loop, and more streams than async_max_workers deadlock. The bridge keeps one per loop;
    # so does this baseline.
    limiters = weakref.WeakKeyDictionary()

    def get_limiter():
        loop = asyncio.get_running_loop()
        if loop not in limiters:
            limiters[loop] = anyio.CapacityLimiter(asyncify.get_async_max_workers())
        return limiters[loop]

    asyncify.get_limiter = get_limiter
    lm = loopback_lm(dspy, url)
    program = dspy.Predict("question -> answer")
    firsts, counts = [], []

    def one():
        # A StreamListener keeps state: one per stream, as the bridge does.
        listener = StreamListener(signature_field_name="answer")
        streamed = dspy.streamify(program, stream_listeners=[listener], async_streaming=False)
        with dspy.context(lm=lm):
            t0, first, count = time.perf_counter(), None, 0
            for item in streamed(question=QUESTION):
                if isinstance(item, StreamResponse):
                    first = first if first is not None else time.perf_counter() - t0
                    count += 1
        firsts.append(first)
        counts.append(count)

    threads = [threading.Thread(target=one) for _ in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"first_chunk_ms_p50": median(firsts) * 1e3, "chunks_per_s": sum(counts) / elapsed}


def serve():
    # Answers are the only thing allowed on the real stdout: keep a handle to it and send
    # every print (ours, dspy's, litellm's) to stderr instead.
    out, sys.stdout = sys.stdout, sys.stderr
    server = Server()
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        out.write(json.dumps(getattr(server, req["cmd"])(req)) + "\n")
        out.flush()


def import_time():
    t0 = time.perf_counter()
    import dspy  # noqa: F401

    print(json.dumps({"import_dspy_s": time.perf_counter() - t0}), flush=True)


if __name__ == "__main__":
    {"serve": serve, "import_time": import_time}[sys.argv[1]]()
