"""Cold start: from ``%overseer_run`` in a fresh IPython to the first job running.

    python benchmarks/cold_start.py

Two fresh processes each: one runs ``%overseer_run`` right after
``%load_ext overseer_nb`` (cold: the local cluster starts then), one loads the
extension, waits 5 s (the user writing the next cells), then runs (the cluster
was started in the background at load). The baseline is ipyparallel's own
``Cluster.start_and_connect_sync`` to 2 engines plus one task, in the same script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ.pop("OVERSEER_NB_PRESTART", None)
    os.environ.setdefault("OVERSEER_NB_JOURNAL", ":memory:")
    from IPython.core.interactiveshell import InteractiveShell
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "overseer_nb")
    sh.run_line_magic("config", "Overseer.engines = 2")
    time.sleep(float(sys.argv[1]))
    sh.run_cell_magic("overseer_graph", "g", "first:")
    sh.run_cell("def first(job):\\n    import time\\n    return time.time()")
    sh.run_cell_magic("overseer_handlers", "g", "def first(job):\\n    import time\\n    return time.time()")
    t0 = time.time()
    run = sh.run_line_magic("overseer_run", "g --wait")
    started = run.jobs["first"].attempts[0].start
    print(json.dumps({"first_job_after_s": started - t0}))
    import overseer_nb as ov
    ov.stop_cluster()
    """
)

BASELINE = textwrap.dedent(
    """
    import json, logging, time
    import ipyparallel as ipp
    t0 = time.time()
    cluster = ipp.Cluster(n=2, controller_ip="127.0.0.1", log_level=logging.WARNING)
    client = cluster.start_and_connect_sync(n=2)
    started = client.load_balanced_view().apply_sync(time.time)
    print(json.dumps({"first_job_after_s": started - t0}))
    client.close()
    cluster.stop_cluster_sync()
    """
)


def child(code: str, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OVERSEER_NB_PRESTART"}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])["first_job_after_s"]


def main() -> None:
    base = child(BASELINE)
    rows = [
        ("ipyparallel: start 2 engines + first task (baseline)", base, None),
        ("%overseer_run right after %load_ext (cold)", child(CHILD, "0"), base),
        ("%overseer_run 5 s after %load_ext (cluster started at load)", child(CHILD, "5"), base),
    ]
    for name, seconds, baseline in rows:
        row = {"name": name, "seconds": round(seconds, 3)}
        if baseline:
            row["ratio"] = round(seconds / baseline, 2)
        print(json.dumps(row))
    print()
    for name, seconds, baseline in rows:
        ratio = f"{seconds / baseline:.2f}" if baseline else ""
        print(f"{name:64} {seconds:8.3f} s {ratio:>6}")


if __name__ == "__main__":
    main()
