"""Big results between jobs: overseer_nb against Dask distributed, in the same run.

A parent returns a numpy array of N bytes; two children each read all of it
and return its sum. Measured: wall time from submission to both children
done, and the growth of this (the kernel's) process's RSS, sampled every
10 ms while it runs. Each side runs on 2 local worker processes (ipyparallel
engines / Dask workers, one thread each), warmed up first, best of 3; the
page cache is dropped between measurements (as root) so each starts alike.
For overseer_nb, also the time until the parent's result file is complete in
the store (written in the background; a run does not wait for it).

    python benchmarks/data_plane.py [--sizes 10,200,1000] [--repeat 3]

Needs numpy and dask[distributed] (a benchmark-only dependency:
``pip install "dask[distributed]"``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import threading
import time

import numpy as np


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


class PeakRSS:
    """The largest RSS growth of this process while the block runs (sampled)."""

    def __enter__(self):
        self.base = rss_bytes()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        self.growth = self.peak - self.base


def make(job):
    import numpy

    return numpy.ones(job.args["n"] // 8)


def child(job):
    return float(job.inputs["parent"].sum())  # reads every byte


GRAPH = {"parent": [], "left": ["parent"], "right": ["parent"]}


def fresh_memory() -> bool:
    """Write dirty pages out and drop the page cache (root only); True if it was dropped.

    Each side starts every size from the same state: on this machine, new
    memory comes slowly while the page cache is full of an earlier side's files.
    """
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def best_of(samples):
    return min(samples, key=lambda s: s[0])


def bench_overseer(mb, repeat, client, store):
    import shutil

    import overseer_nb as ov

    handlers = {"parent": make, "left": child, "right": child}
    samples = []
    for _ in range(repeat):
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            run = ov.run(GRAPH, handlers, args={"n": mb * 2**20}, cluster=client, journal=False, store=store).wait(600)
            elapsed = time.perf_counter() - t0
        assert run.succeeded, run.summary()
        stored = run.jobs["parent"].stored
        while stored is not None and not stored.exists():  # written in the background; not part of the time
            time.sleep(0.005)
        durable = time.perf_counter() - t0
        samples.append((elapsed, mem.growth, durable if stored is not None else elapsed))
        shutil.rmtree(os.path.join(store, run.run_id), ignore_errors=True)
        fresh_memory()
    return best_of(samples)


def _engine_busy() -> bool:
    from overseer_nb.execution.holding import held, writing

    return held() != (0, 0) or writing() > 0


def engines_memory_over_runs(client, store, runs=12, mb=200):
    """The engines' RSS after the 2nd and after the last of ``runs`` runs of an ``mb`` MiB result."""
    import psutil

    import overseer_nb as ov

    pids = client[:].apply_sync(os.getpid)
    handlers = {"parent": make, "left": child, "right": child}
    sizes = []
    for i in range(runs):
        run = ov.run(GRAPH, handlers, args={"n": mb * 2**20}, cluster=client, journal=False, store=store).wait(600)
        assert run.succeeded, run.summary()
        while client[:].apply_sync(_engine_busy) != [False] * len(pids):
            time.sleep(0.02)  # the run's results released, their files written
        if i in (1, runs - 1):
            sizes.append(sum(psutil.Process(pid).memory_info().rss for pid in pids))
    return sizes[0], sizes[1]


def dask_make(n):
    return np.ones(n // 8)


def dask_child(a):
    return float(a.sum())


def bench_dask(mb, repeat, client):
    samples = []
    for _ in range(repeat):
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            parent = client.submit(dask_make, mb * 2**20, pure=False)
            kids = [client.submit(dask_child, parent, pure=False) for _ in range(2)]
            client.gather(kids)
            elapsed = time.perf_counter() - t0
        del parent, kids
        samples.append((elapsed, mem.growth))
        fresh_memory()
    return best_of(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,200,1000", help="result sizes in MiB, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]

    import ipyparallel as ipp
    from dask.distributed import Client, LocalCluster

    import overseer_nb as ov
    from overseer_nb.execution import LOCAL_CONTROLLER_ARGS

    store = tempfile.mkdtemp(prefix="ovnb-bench-store-")
    dask_cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                dashboard_address=None, silence_logs=logging.ERROR)
    dask = Client(dask_cluster)
    cluster = ipp.Cluster(n=2, controller_ip="127.0.0.1", controller_args=list(LOCAL_CONTROLLER_ARGS),
                          log_level=logging.WARNING)
    client = cluster.start_and_connect_sync(n=2)
    results = {}
    try:  # warm both
        dask.gather([dask.submit(dask_child, dask.submit(dask_make, 8, pure=False), pure=False)])
        handlers = {"parent": make, "left": child, "right": child}
        ov.run(GRAPH, handlers, args={"n": 8}, cluster=client, journal=False, store=store).wait(60)
        dropped = fresh_memory()
        for mb in sizes:
            d = bench_dask(mb, opts.repeat, dask)
            fresh_memory()
            o = bench_overseer(mb, opts.repeat, client, store)
            fresh_memory()
            results[mb] = d, o
        held = engines_memory_over_runs(client, store)
    finally:
        dask.close()
        dask_cluster.close()
        client.close()
        cluster.stop_cluster_sync()

    print(f"page cache dropped before each side and size: {'yes' if dropped else 'no (not root)'}")
    print("| result | Dask time | overseer_nb time | ratio | result durable in the store after | "
          "Dask kernel peak RSS growth | overseer_nb kernel peak RSS growth |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for mb in sizes:
        (dt, dm), (ot, om, durable) = results[mb]
        print(f"| {mb} MiB | {dt:.3f} s | {ot:.3f} s | {ot / dt:.2f} | {durable:.3f} s | {dm / 2**20:.0f} MiB | "
              f"{om / 2**20:.0f} MiB |")
    print(f"engines' RSS (both) after run 2 of 12 with a 200 MiB result: {held[0] / 2**20:.0f} MiB; "
          f"after run 12: {held[1] / 2**20:.0f} MiB ({(held[1] - held[0]) / 2**20:+.0f} MiB)")
    for mb in sizes:
        (dt, dm), (ot, om, durable) = results[mb]
        print(json.dumps({"mib": mb, "dask_s": dt, "overseer_s": ot, "ratio": ot / dt, "durable_s": durable,
                          "dask_rss_mib": dm / 2**20, "overseer_rss_mib": om / 2**20}))


if __name__ == "__main__":
    main()
