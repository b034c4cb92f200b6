"""Scheduling overhead of overseer_nb against raw ipyparallel, on one local cluster, in one process.

    python benchmarks/scheduling.py [--engines 2] [--repeat 3] [--quick]

Prints one JSON line per measurement and a table at the end. Every overseer_nb
figure is also given as a ratio to its baseline measured in the same run:

- independent: N no-op tasks through a load-balanced view (raw) vs N independent jobs;
- layered: a 1,000-job DAG (20 layers of 50, 1-3 parents from the layer above) vs the
  same number of independent raw tasks and vs the same DAG submitted at once with
  ipyparallel's native ``after=`` (targets: <= 1.1x native ``after=``, aim: at or under
  the raw tasks); also with eager dispatch off (each job sent by the kernel once its
  parents finished), with the journal on, and with the cache on too (every job
  fingerprinted and looked up, all misses: the target is 1.05x the journal-on time);
- chain: per-edge latency of a 200-job chain vs ipyparallel's native ``after=`` chain
  (the scheduler starts each task itself; target <= 1.1x), with eager dispatch on and
  off; a chain submitted from done-callbacks in this process is printed too (what any
  client-side scheduler pays); and the per-edge profile: on the engines' clocks, the
  gap from a parent's end to its child's start, and the time inside the task; and the
  CPU per job the layered DAG costs the kernel, the controller and the engines;
- fan: 1 -> 500 -> 1 vs raw tasks;
- big: a 10,000-job layered DAG, per-job cost vs the 1,000-job one;
- sleepy: 100 jobs of 50 ms in 10 layers vs the ideal makespan on the engines;
- memory: growth of this process over a 10,000-job run (journal off and on).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import random
import sys
import threading
import time

import psutil

import overseer_nb as ov
from overseer_nb.execution import LOCAL_CONTROLLER_ARGS


def noop(job=None):
    return None


def sleepy(job=None):
    time.sleep(0.05)


def layered(layers: int, width: int, seed: int = 0) -> dict[str, list[str]]:
    rng = random.Random(seed)
    names = [[f"l{i}_{j}" for j in range(width)] for i in range(layers)]
    graph: dict[str, list[str]] = {}
    for i, layer in enumerate(names):
        for job in layer:
            graph[job] = [] if i == 0 else rng.sample(names[i - 1], rng.randint(1, min(3, width)))
    return graph


def chain(n: int) -> dict[str, list[str]]:
    return {f"c{i}": [f"c{i - 1}"] if i else [] for i in range(n)}


def native_after(view, graph: dict[str, list[str]]) -> None:
    """Submit every job of ``graph`` at once, each ``after=`` its parents' tasks, and wait for all."""
    ars: dict[str, object] = {}
    for job, parents in graph.items():  # parents come first in these graphs
        ars[job] = view.set_flags(after=[ars[p] for p in parents]).apply_async(noop)
    view.set_flags(after=[])
    for ar in ars.values():
        ar.get()


def edge_profile(r: ov.Run, length: int) -> tuple[float, float]:
    """Median (gap from parent's end to child's start, time in the task) of a chain run, engines' clocks."""
    import statistics

    att = [r.jobs[f"c{i}"].attempts[-1] for i in range(length)]
    gaps = [b.start - a.end for a, b in zip(att, att[1:], strict=False)]
    inside = [a.end - a.start for a in att]
    return statistics.median(gaps), statistics.median(inside)


def native_profile(view, length: int) -> tuple[float, float]:
    """The same profile of a native ``after=`` chain, from the hub's metadata."""
    import statistics

    ars, ar = [], None
    for _ in range(length):
        ar = view.set_flags(after=[ar] if ar is not None else []).apply_async(noop)
        ars.append(ar)
    view.set_flags(after=[])
    ar.get()
    for a in ars:
        a.get()
    md = [a.metadata for a in ars]
    gaps = [(b["started"] - a["completed"]).total_seconds() for a, b in zip(md, md[1:], strict=False)]
    inside = [(m["completed"] - m["started"]).total_seconds() for m in md]
    return statistics.median(gaps), statistics.median(inside)


def cpu_per_job(fn, jobs: int) -> dict[str, float]:
    """CPU seconds per job that ``fn`` costs this process (the kernel), the controller and the engines."""
    me = psutil.Process()
    kids = me.children(recursive=True)

    def sample() -> dict[str, float]:
        found = {"kernel": sum(me.cpu_times()[:2])}
        for p in kids:
            try:
                role = "engine" if "engine" in " ".join(p.cmdline()) else "controller"
                found[role] = found.get(role, 0.0) + sum(p.cpu_times()[:2])
            except psutil.Error:
                pass
        return found

    before = sample()
    fn()
    after = sample()
    return {role: (after[role] - before.get(role, 0.0)) / jobs for role in after}


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def emit(rows: list, name: str, value: float, baseline: float | None = None, unit: str = "s", **extra) -> None:
    row = {"name": name, "value": round(value, 4), "unit": unit, **extra}
    if baseline:
        row["baseline_seconds"] = round(baseline, 4)
        row["ratio"] = round(value / baseline, 3)
    rows.append(row)
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one repeat")
    opts = parser.parse_args()
    repeat = 1 if opts.quick else opts.repeat
    import ipyparallel as ipp

    logging.getLogger("overseer_nb").setLevel(logging.ERROR)
    cluster = ipp.Cluster(n=opts.engines, controller_ip="127.0.0.1", controller_args=list(LOCAL_CONTROLLER_ARGS),
                          log_level=logging.WARNING)
    client = cluster.start_and_connect_sync(n=opts.engines)
    view = client.load_balanced_view()
    rows: list[dict] = []

    def raw(n: int, f=noop) -> None:
        ars = [view.apply_async(f) for _ in range(n)]
        for ar in ars:
            ar.get()

    def run(graph, f=noop, **kw) -> ov.Run:
        r = ov.run(graph, dict.fromkeys(graph, f), cluster=client, journal=kw.pop("journal", False), **kw).wait()
        assert r.succeeded, r.summary()
        return r

    try:
        n = 300 if opts.quick else 1000
        raw(50), run({f"w{i}": [] for i in range(20)})  # warm up both paths
        t_raw = best(lambda: raw(n), repeat)
        emit(rows, f"raw ipyparallel: {n} independent tasks", t_raw, jobs_per_s=round(n / t_raw))
        indep = {f"j{i}": [] for i in range(n)}
        t = best(lambda: run(indep), repeat)
        emit(rows, f"overseer_nb: {n} independent jobs", t, t_raw, jobs_per_s=round(n / t))
        lay = layered(20, n // 20)
        t_lay_native = best(lambda: native_after(view, lay), repeat)
        emit(rows, f"raw ipyparallel: layered {n} tasks submitted at once with after=", t_lay_native, t_raw)
        t_lay = best(lambda: run(lay), repeat)
        emit(rows, f"overseer_nb: layered {n} jobs (20 layers)", t_lay, t_raw)
        emit(rows, f"overseer_nb: layered {n} jobs vs native after=", t_lay, t_lay_native)
        t = best(lambda: run(lay, eager=False), repeat)
        emit(rows, f"overseer_nb: layered {n} jobs, eager dispatch off, vs native after=", t, t_lay_native)
        # where the time goes: 2 cores are shared by the kernel, the controller and the engines
        for name, fn in (("native after=", lambda: native_after(view, lay)), ("overseer_nb", lambda: run(lay))):
            for role, seconds in sorted(cpu_per_job(fn, n).items()):
                emit(rows, f"  CPU per job of the layered DAG, {name}: {role}", seconds * 1e3, unit="ms")
        t_journal = best(lambda: run(lay, journal=":memory:"), repeat)
        emit(rows, f"overseer_nb: layered {n} jobs, journal on", t_journal, t_lay)
        fresh = iter(range(10**9))  # new args each run: every job a cache miss, looked up all the same
        t = best(lambda: run(lay, journal=":memory:", cache=True, args={"miss": next(fresh)}), repeat)
        emit(rows, f"overseer_nb: layered {n} jobs, journal on, cache on (all misses)", t, t_journal)

        length = 50 if opts.quick else 200

        def native_chain() -> None:
            ar = None
            for _ in range(length):
                ar = view.set_flags(after=[ar] if ar is not None else []).apply_async(noop)
            ar.get()
            view.set_flags(after=[])

        t_native = best(native_chain, repeat)
        emit(rows, f"raw ipyparallel: {length}-task chain with after=, per edge", t_native / (length - 1))
        def callback_chain() -> None:
            done = threading.Event()

            def submit(left: int) -> None:
                if left == 0:
                    done.set()
                    return
                view.apply_async(noop).add_done_callback(lambda _f: submit(left - 1))

            submit(length)
            done.wait()

        t_cb = best(callback_chain, repeat)
        emit(rows, f"raw ipyparallel: {length}-task chain from done-callbacks, per edge", t_cb / (length - 1))
        t = best(lambda: run(chain(length)), repeat)
        emit(rows, f"overseer_nb: {length}-job chain, per edge", t / (length - 1), t_native / (length - 1))
        t = best(lambda: run(chain(length), eager=False), repeat)
        emit(rows, f"overseer_nb: {length}-job chain, eager dispatch off, per edge", t / (length - 1),
             t_native / (length - 1))
        gap, inside = native_profile(view, length)
        emit(rows, "  profile, native after=: parent end -> child start (median)", gap)
        emit(rows, "  profile, native after=: inside the task (median)", inside)
        for eager in (True, False):
            gap, inside = edge_profile(run(chain(length), eager=eager), length)
            name = "eager" if eager else "eager off"
            emit(rows, f"  profile, overseer_nb {name}: parent end -> child start (median)", gap)
            emit(rows, f"  profile, overseer_nb {name}: inside the task (median)", inside)

        fan_n = 100 if opts.quick else 500
        fan = {"root": [], **{f"f{i}": ["root"] for i in range(fan_n)}, "sink": [f"f{i}" for i in range(fan_n)]}
        t_fan_raw = best(lambda: raw(fan_n + 2), repeat)
        t = best(lambda: run(fan), repeat)
        emit(rows, f"overseer_nb: 1 -> {fan_n} -> 1", t, t_fan_raw)

        big_n = 2000 if opts.quick else 10_000
        big = layered(20, big_n // 20)
        t_big = best(lambda: run(big), 1)
        emit(rows, f"overseer_nb: layered {big_n} jobs, per job", t_big / big_n, t_lay / n)

        sl = layered(10, 10)
        ideal = 10 * (10 * 0.05 / opts.engines)
        t = best(lambda: run(sl, sleepy), repeat)
        emit(rows, "overseer_nb: 100 jobs of 50 ms in 10 layers (vs ideal makespan)", t, ideal)

        proc = psutil.Process()
        for journal in (False, ":memory:"):
            gc.collect()
            before = proc.memory_info().rss
            run(big, journal=journal)
            gc.collect()
            grown = (proc.memory_info().rss - before) / 2**20
            emit(rows, f"kernel memory growth over a {big_n}-job run (journal {'on' if journal else 'off'})",
                 grown, unit="MB")
    finally:
        client.close()
        cluster.stop_cluster_sync()

    print()
    print(f"{'measurement':72} {'value':>10} {'unit':>4} {'baseline':>10} {'ratio':>7}")
    for row in rows:
        print(f"{row['name']:72} {row['value']:>10.4f} {row['unit']:>4} "
              f"{row.get('baseline_seconds', ''):>10} {row.get('ratio', ''):>7}")


if __name__ == "__main__":
    sys.exit(main())
