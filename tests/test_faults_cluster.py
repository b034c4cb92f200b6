"""The whole cluster goes: every engine dies mid-run, or the cluster is stopped under a run.

Each test has a cluster of its own (it kills its engines or closes its client).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter

import cloudpickle
import pytest
from conftest import start_cluster, stop_cluster, wait_until

import overseer_nb as ov
from overseer_nb.execution import engine_process

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_all_engines_die_and_a_withdrawn_attempt_never_runs_again_under_its_number(own_cluster, tmp_path):
    cluster, client = own_cluster
    log = tmp_path / "calls"

    def work(job):
        with open(log, "a") as f:
            f.write(f"{job.type} {job.attempt}\n")
        if job.type != "queued" and job.attempt == 1:
            time.sleep(60)  # both engines busy: 'queued' waits in the scheduler
        return job.attempt

    graph = {"a": [], "b": [], "queued": []}
    pids = [p.pid for p in client[:].apply_sync(engine_process)]
    run = ov.run(graph, dict.fromkeys(graph, work), cluster=client, journal=False, preflight=False)
    wait_until(lambda: run.statuses["a"] == run.statuses["b"] == "started")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: len(client.ids) == 0 and run.done, 20)
    assert run.message.startswith("no engines")
    # 'queued' was withdrawn while no engine existed; the scheduler still holds its task
    cluster.start_engines_sync(n=1)
    wait_until(lambda: run.statuses == dict.fromkeys(graph, "finished"), 60)
    calls = Counter(tuple(line.split()) for line in log.read_text().splitlines())
    assert all(n == 1 for n in calls.values()), calls  # no attempt number ran twice
    assert [job for job, _ in calls].count("queued") == 1  # the withdrawn task did not run its handler
    numbers = [a.number for a in run.jobs["queued"].attempts]
    assert numbers == [2] and run.results["queued"] == 2  # attempt 1 was sent: its number is not reused


def test_stopping_the_cluster_mid_run_holds_the_run_and_resume_goes_on(tmp_path):
    cluster, client = start_cluster()
    log, release = tmp_path / "calls", tmp_path / "release"

    def step(job):
        with open(log, "a") as f:
            f.write(f"{job.type}\n")
        deadline = time.time() + 60
        while job.type == "slow" and job.attempt == 1 and not release.exists() and time.time() < deadline:
            time.sleep(0.02)  # the engine lives on when the client is closed: let it go at the end
        return job.type

    graph = {"first": [], "slow": ["first"], "last": ["slow"]}
    try:
        ov.use_cluster(cluster)  # the default for runs: a client of its own, which stop_cluster closes
        run = ov.run(graph, dict.fromkeys(graph, step), journal=False)
        wait_until(lambda: run.statuses["slow"] == "started")
        stopped_at = time.time()
        ov.stop_cluster()  # what %overseer_cluster --stop and use_cluster(engines=N) do to the client
        run.wait(10)  # used to hang: the closed client never answers
        returned = time.time() - stopped_at
        assert returned < 2.0, returned
        assert run.statuses == {"first": "finished", "slow": "unstarted", "last": "unstarted"}
        assert run.jobs["slow"].display_state == "requeued"
        assert "the cluster was stopped" in run.message and "resume" in run.message.lower()
        run.resume(cluster=client)
        run.wait(60)
        assert run.statuses == dict.fromkeys(graph, "finished")
        assert log.read_text().split() == ["first", "slow", "slow", "last"]
    finally:
        release.write_text("")
        ov.stop_cluster()
        stop_cluster(cluster, client)
