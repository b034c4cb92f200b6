"""Big results between jobs: overseer_nb against Dask distributed, in the same run.

A parent returns a numpy array of N bytes; two children each read all of it
and return its sum. Measured: wall time from submission to both children
done, and the growth of this (the kernel's) process's RSS, sampled every
10 ms while it runs. Each side runs on 2 local worker processes (ipyparallel
engines / Dask workers, one thread each), warmed up first, best of 3.

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


def bench_overseer(sizes, repeat, client):
    import overseer_nb as ov

    handlers = {"parent": make, "left": child, "right": child}
    out = {}
    ov.run(GRAPH, handlers, args={"n": 8}, cluster=client, journal=False).wait(60)  # warm
    for mb in sizes:
        best = None
        for _ in range(repeat):
            with PeakRSS() as mem:
                t0 = time.perf_counter()
                run = ov.run(GRAPH, handlers, args={"n": mb * 2**20}, cluster=client, journal=False).wait(600)
                elapsed = time.perf_counter() - t0
            assert run.succeeded, run.summary()
            sample = (elapsed, mem.growth)
            best = sample if best is None or sample[0] < best[0] else best
        out[mb] = best
    return out


def dask_make(n):
    return np.ones(n // 8)


def dask_child(a):
    return float(a.sum())


def bench_dask(sizes, repeat):
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)
    out = {}
    try:
        client.gather([client.submit(dask_child, client.submit(dask_make, 8, pure=False), pure=False)])
        for mb in sizes:
            best = None
            for _ in range(repeat):
                with PeakRSS() as mem:
                    t0 = time.perf_counter()
                    parent = client.submit(dask_make, mb * 2**20, pure=False)
                    kids = [client.submit(dask_child, parent, pure=False) for _ in range(2)]
                    client.gather(kids)
                    elapsed = time.perf_counter() - t0
                del parent, kids
                sample = (elapsed, mem.growth)
                best = sample if best is None or sample[0] < best[0] else best
            out[mb] = best
    finally:
        client.close()
        cluster.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,200,1000", help="result sizes in MiB, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]

    import ipyparallel as ipp

    from overseer_nb.execution import LOCAL_CONTROLLER_ARGS

    os.environ.setdefault("OVERSEER_NB_STORE", tempfile.mkdtemp(prefix="ovnb-bench-store-"))
    dask = bench_dask(sizes, opts.repeat)
    cluster = ipp.Cluster(n=2, controller_ip="127.0.0.1", controller_args=list(LOCAL_CONTROLLER_ARGS),
                          log_level=logging.WARNING)
    client = cluster.start_and_connect_sync(n=2)
    try:
        ours = bench_overseer(sizes, opts.repeat, client)
    finally:
        client.close()
        cluster.stop_cluster_sync()

    print("| result | Dask time | overseer_nb time | ratio | Dask kernel peak RSS growth | overseer_nb kernel peak RSS growth |")
    print("| --- | --- | --- | --- | --- | --- |")
    for mb in sizes:
        (dt, dm), (ot, om) = dask[mb], ours[mb]
        print(f"| {mb} MiB | {dt:.3f} s | {ot:.3f} s | {ot / dt:.2f} | {dm / 2**20:.0f} MiB | {om / 2**20:.0f} MiB |")
        print(json.dumps({"mib": mb, "dask_s": dt, "overseer_s": ot, "ratio": ot / dt,
                          "dask_rss_mib": dm / 2**20, "overseer_rss_mib": om / 2**20}))


if __name__ == "__main__":
    main()
