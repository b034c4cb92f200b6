"""An engine that dies mid-job: the job goes back to unstarted and runs elsewhere."""

from __future__ import annotations

import os
import signal
import sys
import time

import cloudpickle
import pytest

import overseer_nb as ov

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_engine_killed_mid_job_requeues_at_once_and_finishes(own_cluster, tmp_path):
    cluster, client = own_cluster
    pid_file = tmp_path / "pid"

    def victim(job):
        print(f"attempt {job.attempt} on pid {os.getpid()}", flush=True)
        if job.attempt == 1:
            pid_file.write_text(str(os.getpid()))
            time.sleep(60)
        return os.getpid()

    run = ov.run({"victim": [], "child": ["victim"]}, {"victim": victim, "child": lambda job: job.inputs["victim"]},
                 cluster=client)
    deadline = time.time() + 20
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.02)
    pid = int(pid_file.read_text())
    time.sleep(0.3)  # let the partial output reach the client
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    run.wait(30)

    assert run.statuses == {"victim": "finished", "child": "finished"}
    first, second = run.jobs["victim"].attempts
    assert first.outcome == "lost" and first.error.ename == "EngineLost"
    assert first.end - killed_at < 2.0  # not ipyparallel's 5 s grace
    assert f"attempt 1 on pid {pid}" in first.stdout  # the partial output is kept
    assert run.results["victim"] != pid and run.results["child"] == run.results["victim"]
    assert second.engine != first.engine
