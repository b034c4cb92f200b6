"""What the run journal costs: the layered 1,000-job no-op DAG with the journal off and on.

Both in the same process, interleaved (off, on, off, on, ...) so that both see
the same machine load; prints one JSON line per run and a table of medians.

    python benchmarks/journal_overhead.py                 # ThreadExecutor and a 2-engine local cluster
    python benchmarks/journal_overhead.py --no-cluster    # ThreadExecutor only
    python benchmarks/journal_overhead.py --repeat 7 --engines 2

The journal is a file in a temporary folder (WAL, synchronous=NORMAL), as on
a user's machine. The graph is 20 layers of 50 jobs, each job with 1-3
parents drawn from the layer above (seeded).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

import overseer_nb as ov
from overseer_nb.journal.recorder import Recorder

# Time the run loops spend in the journal's subscriber (writing and waiting for
# the commit): an upper bound of what the journal adds to a run's critical
# path, and much less noisy than the difference of two wall times on a busy machine.
_in_journal = [0.0]
_record = Recorder.__call__


def _timed_record(self, run, step):
    start = time.perf_counter()
    try:
        return _record(self, run, step)
    finally:
        _in_journal[0] += time.perf_counter() - start


Recorder.__call__ = _timed_record


def layered_graph(layers: int = 20, width: int = 50, seed: int = 1) -> dict[str, list[str]]:
    """20 layers of 50 jobs, each with 1-3 parents from the layer above."""
    rng = random.Random(seed)
    rows = [[f"j{layer:02d}_{i:02d}" for i in range(width)] for layer in range(layers)]
    graph: dict[str, list[str]] = {}
    for layer, row in enumerate(rows):
        for job in row:
            graph[job] = [] if layer == 0 else rng.sample(rows[layer - 1], rng.randint(1, 3))
    return graph


def noop(job):
    return None


def timed(graph, handlers, journal, make_executor=None, cluster=None) -> tuple[float, float]:
    executor = make_executor() if make_executor else None
    _in_journal[0] = 0.0
    start = time.perf_counter()
    run = ov.run(graph, handlers, executor=executor, cluster=cluster, journal=journal)
    run.wait()
    took = time.perf_counter() - start
    if not run.succeeded:
        raise SystemExit(f"the benchmark run did not finish: {run.summary()}")
    if executor is not None:
        executor.close()
    return took, _in_journal[0]


def measure(name: str, repeat: int, graph, journal_path: str, **where) -> dict:
    handlers = {job: noop for job in graph}
    timed(graph, handlers, False, **where)  # warm up: imports, connections, caches
    times: dict[str, list[float]] = {"off": [], "on": []}
    shares = []
    for i in range(repeat):
        order = ("off", "on") if i % 2 == 0 else ("on", "off")
        for mode in order:
            took, journal_s = timed(graph, handlers, journal_path if mode == "on" else False, **where)
            times[mode].append(took)
            if mode == "on":
                shares.append(journal_s / took)
            line = {"executor": name, "journal": mode, "jobs": len(graph), "seconds": round(took, 4)}
            if mode == "on":
                line["in_journal_seconds"] = round(journal_s, 4)
            print(json.dumps(line), flush=True)
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    return {"executor": name, "off": off, "on": on, "ratio": on / off, "share": statistics.median(shares)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs with the journal off and on each (default 5)")
    parser.add_argument("--engines", type=int, default=2, help="engines of the local cluster (default 2)")
    parser.add_argument("--no-cluster", action="store_true", help="measure with ThreadExecutor only")
    opts = parser.parse_args(argv)

    graph = layered_graph()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "journal.sqlite")
        rows.append(measure("ThreadExecutor(2)", opts.repeat, graph, path, make_executor=lambda: ov.ThreadExecutor(2)))
        if not opts.no_cluster:
            client = ov.use_cluster(engines=opts.engines)
            try:
                rows.append(measure(f"cluster, {opts.engines} engines", opts.repeat, graph, path, cluster=client))
            finally:
                ov.stop_cluster()
    print(f"\nlayered {len(graph)}-job no-op DAG, medians of {opts.repeat} runs each", file=sys.stderr)
    print(f"{'executor':24} {'journal off':>12} {'journal on':>12} {'on/off':>8} {'in journal':>11}", file=sys.stderr)
    for r in rows:
        print(
            f"{r['executor']:24} {r['off']:11.3f}s {r['on']:11.3f}s {r['ratio']:8.3f} {r['share']:10.1%}",
            file=sys.stderr,
        )
    print("in journal: share of the run's wall time its loop spent writing to the journal", file=sys.stderr)


if __name__ == "__main__":
    main()
