"""Benchmark floor: the same DSPy work timed inside one Python process, no bridge.

    plain_python.py predict --n N                       -> {"p50_us", "p99_us", "mean_us"}
    plain_python.py lm_cpu --url URL --n N              -> {"cpu_ms_per_call", "wall_ms_per_call"}
    plain_python.py lm_threads --url URL --threads T --seconds S -> {"calls_per_s"}
    plain_python.py import_time                         -> {"import_dspy_s"}
    plain_python.py streams --url URL --streams N       -> {"first_chunk_ms_p50", "chunks_per_s"}

Each mode prints one JSON line on stdout. `dspy` is imported lazily, inside the
mode, so `import_time` measures a cold import in this fresh process.
"""

import argparse
import json
import os
import sys
import threading
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

QUESTION = "What is 2+2?"


def emit(obj):
    print(json.dumps(obj), flush=True)


def loopback_lm(dspy, url):
    # Same settings the bridges use: no cache, no retries - every call hits the server.
    return dspy.LM("openai/gpt-4o-mini", api_base=url, api_key="test", cache=False, num_retries=0)


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def predict(args):
    import dspy

    lm = dspy.utils.DummyLM({"": {"answer": "x"}})
    program = dspy.Predict("question -> answer")
    times = []
    with dspy.context(lm=lm, trace=[]):
        for _ in range(200):  # warm-up: first calls build adapters/templates
            program(question=QUESTION)
        for _ in range(args.n):
            t0 = time.perf_counter_ns()
            program(question=QUESTION)
            times.append(time.perf_counter_ns() - t0)
    times.sort()
    emit({
        "p50_us": percentile(times, 0.50) / 1e3,
        "p99_us": percentile(times, 0.99) / 1e3,
        "mean_us": sum(times) / len(times) / 1e3,
    })


def lm_cpu(args):
    import dspy

    lm = loopback_lm(dspy, args.url)
    program = dspy.Predict("question -> answer")
    with dspy.context(lm=lm, trace=[]):
        for _ in range(20):  # warm-up: litellm/httpx client set-up, connection pool
            program(question=QUESTION)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(args.n):
            program(question=QUESTION)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    # CPU time is what holds the GIL: it bounds calls/s of any single-interpreter design.
    emit({"cpu_ms_per_call": cpu * 1e3 / args.n, "wall_ms_per_call": wall * 1e3 / args.n})


def lm_threads(args):
    import dspy

    lm = loopback_lm(dspy, args.url)
    with dspy.context(lm=lm, trace=[]):
        warm = dspy.Predict("question -> answer")
        for _ in range(5):
            warm(question=QUESTION)

    counts = [0] * args.threads
    start = threading.Barrier(args.threads + 1)
    deadline = [float("inf")]  # set once every thread is warm and released

    def worker(i):
        program = dspy.Predict("question -> answer")  # each thread its own program
        with dspy.context(lm=lm, trace=[]):  # context is per thread
            program(question=QUESTION)  # per-thread warm-up, not counted
            start.wait()
            while time.perf_counter() < deadline[0]:
                program(question=QUESTION)
                counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    deadline[0] = t0 + args.seconds
    for t in threads:
        t.join()
    # Divide by the real elapsed time: calls in flight at the deadline still finish.
    emit({"calls_per_s": sum(counts) / (time.perf_counter() - t0)})


def streams(args):
    """N threads, each streaming one answer with dspy.streamify at the same time."""
    import asyncio
    import weakref

    import anyio
    import dspy
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
    lm = loopback_lm(dspy, args.url)
    program = dspy.Predict("question -> answer")
    firsts, counts = [], []

    def one():
        # A StreamListener keeps state: one per stream, as the bridge does.
        listener = StreamListener(signature_field_name="answer")
        streamed = dspy.streamify(program, stream_listeners=[listener], async_streaming=False)
        with dspy.context(lm=lm):
            t0, first, n = time.perf_counter(), None, 0
            for item in streamed(question=QUESTION):
                if isinstance(item, StreamResponse):
                    first = first if first is not None else time.perf_counter() - t0
                    n += 1
        firsts.append(first)
        counts.append(n)

    one()  # warm-up
    firsts.clear()
    counts.clear()
    threads = [threading.Thread(target=one) for _ in range(args.streams)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    emit({"first_chunk_ms_p50": percentile(sorted(firsts), 0.5) * 1e3, "chunks_per_s": sum(counts) / elapsed})


def import_time(_args):
    t0 = time.perf_counter()
    import dspy  # noqa: F401

    emit({"import_dspy_s": time.perf_counter() - t0})


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("predict")
    p.add_argument("--n", type=int, default=2000)
    p = sub.add_parser("lm_cpu")
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, default=200)
    p = sub.add_parser("lm_threads")
    p.add_argument("--url", required=True)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--seconds", type=float, default=2.0)
    sub.add_parser("import_time")
    p = sub.add_parser("streams")
    p.add_argument("--url", required=True)
    p.add_argument("--streams", type=int, default=64)
    args = parser.parse_args(argv)
    modes = {"predict": predict, "lm_cpu": lm_cpu, "lm_threads": lm_threads, "import_time": import_time, "streams": streams}
    modes[args.mode](args)


if __name__ == "__main__":
    main(sys.argv[1:])
