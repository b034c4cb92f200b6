"""A kernel killed while its cluster runs on: resume takes what the cluster did, and runs nothing twice.

The "kernel" is a second Python process that connects to a cluster this test
started (as a user's own ipcluster would be), runs a graph with a journal
file, and is SIGKILLed while a job runs. This process then loads the run from
the journal, connects to the same cluster and resumes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import overseer_nb as ov
from overseer_nb.journal.recorder import forget_live_runs

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

KERNEL = textwrap.dedent(
    """
    import os, sys, time
    import ipyparallel as ipp
    import overseer_nb as ov

    url_file, journal, marks, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])

    def slow(job):
        import os, time
        with open(os.path.join(job.args["marks"], f"slow-{os.getpid()}-{time.time()}"), "w"):
            pass
        time.sleep(job.args["seconds"])
        return 42

    def after(job):
        import os, time
        with open(os.path.join(job.args["marks"], f"after-{time.time()}"), "w"):
            pass
        return job.inputs["slow"] + 1

    client = ipp.Client(url_file)
    run = ov.run({"slow": [], "after": ["slow"]}, {"slow": slow, "after": after},
                 args={"marks": marks, "seconds": seconds}, cluster=client, journal=journal)
    import sqlite3
    def recorded():  # what the journal committed, not the run's view a moment before it is written
        conn = sqlite3.connect(journal)
        try:
            row = conn.execute("SELECT status FROM jobs WHERE run_id = ? AND job = 'slow'", (run.run_id,)).fetchone()
            return row[0] if row else None
        finally:
            conn.close()
    while recorded() != "started":
        time.sleep(0.01)
    print(run.run_id, flush=True)
    time.sleep(600)  # killed before this ends
    """
)


def resume_handlers():
    """The handlers the new kernel has (made here, so they are shipped by value)."""

    def slow(job):
        raise AssertionError("the cluster still runs this job: resume must not send it again")

    def after(job):
        import os
        import time

        with open(os.path.join(job.args["marks"], f"after-{time.time()}"), "w"):
            pass
        return job.inputs["slow"] + 1

    return {"slow": slow, "after": after}


def url_file(cluster) -> str:
    security = Path(cluster.profile_dir) / "security"
    name = f"ipcontroller-{cluster.cluster_id}-client.json" if cluster.cluster_id else "ipcontroller-client.json"
    return str(security / name)


def kill_kernel_mid_job(tmp_path, cluster, seconds: float) -> tuple[str, str, Path]:
    journal, marks = str(tmp_path / "journal.sqlite"), tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "kernel.py"
    script.write_text(KERNEL)
    proc = subprocess.Popen(
        [sys.executable, str(script), url_file(cluster), journal, str(marks), str(seconds)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "OVERSEER_NB_PRESTART": "0"},
    )
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the kernel process did not start its run"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    return run_id, journal, marks


def test_a_job_that_finished_after_its_kernel_died_is_taken_not_rerun(tmp_path, own_cluster):
    cluster, client = own_cluster
    run_id, journal, marks = kill_kernel_mid_job(tmp_path, cluster, seconds=0.5)
    time.sleep(1.5)  # the job ends on the cluster with nobody listening
    forget_live_runs()
    run = ov.load_run(run_id, journal=journal)
    assert run.statuses["slow"] == "unstarted"  # lost with its kernel, as far as the journal knows
    t0 = time.monotonic()
    run.resume(resume_handlers(), cluster=client).wait(30)
    took = time.monotonic() - t0
    assert run.succeeded, run.summary()
    assert run.results == {"slow": 42, "after": 43}
    assert len(list(marks.glob("slow-*"))) == 1 and len(list(marks.glob("after-*"))) == 1
    attempts = run.jobs["slow"].attempts
    assert [a.number for a in attempts] == [1] and attempts[0].outcome == "finished" and attempts[0].task
    loaded = ov.load_run(run_id, journal=journal)
    assert loaded.statuses == {"slow": "finished", "after": "finished"}
    print(f"resume took {took:.2f} s")


def test_a_job_still_running_after_its_kernel_died_is_waited_for_not_started_twice(tmp_path, own_cluster):
    cluster, client = own_cluster
    run_id, journal, marks = kill_kernel_mid_job(tmp_path, cluster, seconds=2.0)
    forget_live_runs()
    run = ov.load_run(run_id, journal=journal)
    run.resume(resume_handlers(), cluster=client)
    assert run.statuses["slow"] == "started"  # adopted: it runs on the cluster
    run.wait(30)
    assert run.succeeded, run.summary()
    assert run.results["after"] == 43
    # the old kernel sent "after" ahead of "slow" (attempt 1, queued on the cluster): when "slow" ended it did
    # not run (the store says a new kernel carries the run on); the new kernel's attempt is numbered after it
    time.sleep(0.5)
    assert len(list(marks.glob("slow-*"))) == 1 and len(list(marks.glob("after-*"))) == 1
    assert [a.number for a in run.jobs["after"].attempts] == [2]


def test_an_attempt_the_cluster_does_not_know_runs_again(tmp_path, own_cluster, client):
    # the run resumed on another cluster (the shared one): its hub never saw the task
    cluster, first = own_cluster
    run_id, journal, marks = kill_kernel_mid_job(tmp_path, cluster, seconds=0.2)
    forget_live_runs()
    run = ov.load_run(run_id, journal=journal)
    handlers = {**resume_handlers(), "slow": lambda job: 42}
    run.resume(handlers, cluster=client).wait(30)
    assert run.succeeded and run.results["after"] == 43
    assert [a.outcome for a in run.jobs["slow"].attempts] == ["lost", "finished"]


def test_use_cluster_with_a_url_file_connects_to_that_cluster(own_cluster):
    from overseer_nb.execution import cluster as clusters

    cluster, client = own_cluster
    saved = dict(clusters._state)
    try:
        connected = ov.use_cluster(url_file=url_file(cluster))
        assert sorted(connected.ids) == sorted(client.ids)
        run = ov.run({"a": []}, {"a": lambda job: 7}, journal=False).wait(30)
        assert run.results == {"a": 7}
        connected.close()
    finally:
        clusters._state.update(saved)
