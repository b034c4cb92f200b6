"""How fast a run notices what real clusters do, on fresh local clusters of 2 engines.

    python benchmarks/fault_detection.py

For each scenario: the time from the fault to the job's attempt ending (the
job back to unstarted, or failed), and the run's outcome. Printed as JSON lines
and a table.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import cloudpickle
import ipyparallel as ipp
import psutil

import overseer_nb as ov
from overseer_nb.execution import LOCAL_CONTROLLER_ARGS, engine_identity

cloudpickle.register_pickle_by_value(sys.modules[__name__])
logging.getLogger("overseer_nb").setLevel(logging.CRITICAL)


def new_cluster():
    cluster = ipp.Cluster(n=2, controller_ip="127.0.0.1", controller_args=list(LOCAL_CONTROLLER_ARGS),
                          log_level=logging.WARNING)
    return cluster, cluster.start_and_connect_sync(n=2)


def processes(cluster, client) -> list[psutil.Process]:
    controller = psutil.Process(cluster.controller.process.pid)
    procs = [controller, *controller.children(recursive=True)]
    for pid, _ in client[:].apply_sync(engine_identity):
        engine = psutil.Process(pid)
        procs += [engine, *engine.children(recursive=True)]
    return procs


def victim_handler(pid_file: Path):
    def victim(job):
        if job.attempt == 1:
            pid_file.write_text(str(os.getpid()))
            time.sleep(60)
        return "done"

    return victim


def wait_for(path: Path) -> int:
    while not path.exists():
        time.sleep(0.01)
    time.sleep(0.05)
    return int(path.read_text())


def scenario(name, fault, make_handler=victim_handler, **run_opts):
    """Run a one-job graph, apply ``fault(pid, cluster, client)`` once it runs, time the reaction."""
    cluster, client = new_cluster()
    procs = processes(cluster, client)
    with TemporaryDirectory() as tmp:
        pid_file = Path(tmp) / "pid"
        run = ov.run({"job": []}, {"job": make_handler(pid_file)}, cluster=client, journal=False, **run_opts)
        pid = wait_for(pid_file)
        at = time.time()
        fault(pid, cluster, client)
        try:
            run.wait(60)
        except TimeoutError:
            pass
        first = run.jobs["job"].attempts[0]
        detected = (first.end - at) if first.end else None
        row = {"scenario": name, "detection_s": round(detected, 2) if detected is not None else None,
               "outcome": f"{run.statuses['job']} after {len(run.jobs['job'].attempts)} attempt(s); "
                          f"attempt 1: {first.outcome}" + (f"; {run.message[:60]}" if run.message else "")}
    print(json.dumps(row), flush=True)
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    for end in (client.close, cluster.stop_cluster_sync):
        try:
            end()
        except Exception:
            pass
    return row


def stubborn_handler(pid_file: Path):
    def stubborn(job):
        pid_file.write_text(str(os.getpid()))
        while True:
            try:
                time.sleep(0.05)
            except KeyboardInterrupt:
                pass

    return stubborn


def main() -> None:
    rows = [
        scenario("engine SIGKILLed (nanny alive)", lambda pid, c, cl: os.kill(pid, signal.SIGKILL)),
        scenario("host lost (engine and nanny SIGKILLed)",
                 lambda pid, c, cl: [p.kill() for p in [psutil.Process(pid), *psutil.Process(pid).children()]]),
        scenario("engine frozen (SIGSTOP)", lambda pid, c, cl: os.kill(pid, signal.SIGSTOP)),
        scenario("controller SIGKILLed", lambda pid, c, cl: os.kill(c.controller.process.pid, signal.SIGKILL)),
        scenario("timeout 1 s, handler ignores Ctrl-C (killed after kill_grace=1 s)", lambda pid, c, cl: None,
                 stubborn_handler, timeout=1.0, kill_grace=1.0),
    ]
    print()
    print(f"{'scenario':66} {'detection':>10}  outcome")
    for r in rows:
        d = f"{r['detection_s']:.2f} s" if r["detection_s"] is not None else "-"
        print(f"{r['scenario']:66} {d:>10}  {r['outcome']}")


if __name__ == "__main__":
    main()
