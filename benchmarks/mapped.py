"""Per-item overhead of a mapped job type against raw ipyparallel tasks, in the same run.

A parent returns ``range(N)``; a mapped type runs one no-op job per item; a
reducer gets the list of their results. Against it: N no-op tasks through a
load-balanced view (what any map over ipyparallel costs). 2 local engines,
best of ``--repeat``, journal off; also the state machine alone on the same
map (its events replayed in this process, no cluster), to show where the time goes.

    python benchmarks/mapped.py [--items 1000,10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time


def parent(job):
    return range(job.args["n"])


def item(job):
    return job.inputs["parent"]


def total(job):
    return len(job.inputs["item"])


def noop(x):
    return x


def bench_raw(view, n, repeat):
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        view.map_async(noop, range(n), chunksize=1).get()
        elapsed = time.perf_counter() - t0
        best = elapsed if best is None else min(best, elapsed)
    return best


def bench_mapped(client, n, repeat):
    import overseer_nb as ov

    graph = {"parent": [], "item": [ov.each("parent")], "total": ["item"]}
    handlers = {"parent": parent, "item": item, "total": total}
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        run = ov.run(graph, handlers, args={"n": n}, cluster=client, journal=False).wait(1800)
        elapsed = time.perf_counter() - t0
        assert run.succeeded and run.results["total"] == n, run.summary()
        best = elapsed if best is None else min(best, elapsed)
    return best


def machine_only(n):
    """Seconds the state machine alone takes for a map of ``n`` items (no cluster)."""
    import overseer_nb as ov
    from overseer_nb.machine import RunMachine
    from overseer_nb.options import RunOptions
    from overseer_nb.records import Outcome

    m = RunMachine(ov.JobGraph({"parent": [], "item": [ov.each("parent")], "total": ["item"]}), RunOptions(),
                   rng=random.Random(0))
    t0 = time.perf_counter()
    m.tick(0)
    m.started("parent", 1, 0, 0)
    m.ended("parent", 1, Outcome("ok", result=b"x", length=n), 0)
    for i in range(n):
        m.started(f"item[{i}]", 1, 0, 0)
        m.ended(f"item[{i}]", 1, Outcome("ok", result=b"x"), 0)
    assert m.status("total") == "unstarted" and m.status("item") == "finished"
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    sizes = [int(s) for s in opts.items.split(",")]

    import ipyparallel as ipp

    import overseer_nb as ov
    from overseer_nb.execution import LOCAL_CONTROLLER_ARGS

    cluster = ipp.Cluster(n=2, controller_ip="127.0.0.1", controller_args=list(LOCAL_CONTROLLER_ARGS),
                          log_level=logging.WARNING)
    client = cluster.start_and_connect_sync(n=2)
    rows = []
    try:
        view = client.load_balanced_view()
        view.map_async(noop, range(100)).get()
        graph = {"parent": [], "item": [ov.each("parent")], "total": ["item"]}
        ov.run(graph, {"parent": parent, "item": item, "total": total}, args={"n": 10}, cluster=client,
               journal=False).wait(60)  # warm
        for n in sizes:
            raw = bench_raw(view, n, opts.repeat)
            ours = bench_mapped(client, n, opts.repeat)
            rows.append((n, raw, ours, machine_only(n)))
    finally:
        client.close()
        cluster.stop_cluster_sync()
    print("| items | raw ipyparallel | overseer_nb map | ratio | per item, raw | per item, overseer_nb | state machine alone |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n, raw, ours, machine in rows:
        print(f"| {n:,} | {raw:.2f} s | {ours:.2f} s | {ours / raw:.2f} | {raw / n * 1e3:.2f} ms | "
              f"{ours / n * 1e3:.2f} ms | {machine:.2f} s |")
    for n, raw, ours, machine in rows:
        print(json.dumps({"items": n, "raw_s": raw, "overseer_s": ours, "ratio": ours / raw, "machine_s": machine}))


if __name__ == "__main__":
    main()
