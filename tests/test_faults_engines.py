"""Engines that die at once, native crashes, and kills by pid: on one real cluster that replaces its engines.

The tests share one 2-engine cluster (a ``Cluster``, so the runs start a
replacement for each engine that dies) and wait for both engines before each.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import cloudpickle
import pytest
from conftest import start_cluster, stop_cluster, wait_for_engines

import overseer_nb as ov
from overseer_nb.execution.connection import Connection

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def replacing_cluster():
    cluster, client = start_cluster()
    yield cluster, client
    stop_cluster(cluster, client)


@pytest.fixture
def cluster(replacing_cluster):
    cluster, client = replacing_cluster
    wait_for_engines(client, 2, timeout=60)
    return cluster


def stamp(path, job):
    with open(path, "a") as f:
        f.write(f"{job.type} {job.attempt} {time.time()}\n")


def test_an_engine_killed_before_its_first_message_is_a_loss_not_a_failure(cluster, tmp_path):
    log = tmp_path / "calls"

    def dies_at_once(job):
        stamp(log, job)
        if job.attempt == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # no IOPub message gets out
        return job.attempt

    run = ov.run({"a": []}, {"a": dies_at_once}, cluster=cluster, journal=False).wait(60)
    assert run.statuses == {"a": "finished"}, run.jobs["a"]
    first = run.jobs["a"].attempts[0]
    assert first.outcome == "lost" and first.error.ename == "EngineLost"  # was: failed, RemoteError EngineError
    died_at = float(log.read_text().split()[2])
    assert first.end - died_at < 2.0  # the hub says where it ran: not the scheduler's 5 s


def test_a_job_that_exits_at_once_fails_after_max_engine_losses_with_the_loss_message(cluster):
    def exits(job):
        os._exit(1)

    t = time.time()
    run = ov.run({"poison": [], "after": ["poison"]}, {"poison": exits, "after": lambda job: 1},
                 cluster=cluster, journal=False, max_engine_losses=2).wait(60)
    assert run.statuses == {"poison": "failed", "after": "unstarted"}
    assert "its engine was lost 2 times (max_engine_losses=2)" in run.jobs["poison"].message
    assert [a.outcome for a in run.jobs["poison"].attempts] == ["lost", "lost"]
    assert time.time() - t < 30


def test_a_segfault_leaves_the_jobs_python_stack_in_that_attempts_stderr(cluster, tmp_path):
    log = tmp_path / "calls"

    def crashes_in_c(job):
        stamp(log, job)
        if job.attempt == 1:
            print("before the crash", file=sys.stderr, flush=True)
            import ctypes

            ctypes.string_at(0)  # SIGSEGV in C code
        return "ok"

    run = ov.run({"native": []}, {"native": crashes_in_c}, cluster=cluster, journal=False).wait(60)
    assert run.results == {"native": "ok"}
    first = run.jobs["native"].attempts[0]
    assert first.outcome == "lost"
    assert "before the crash" in first.stderr
    assert "Fatal Python error: Segmentation fault" in first.stderr
    assert "in crashes_in_c" in first.stderr  # the handler's frame, from faulthandler
    assert first.end - float(log.read_text().split()[2]) < 2.0
    assert "Segmentation fault" not in run.jobs["native"].attempts[-1].stderr


def test_an_engine_pid_reused_by_another_process_is_not_killed(replacing_cluster):
    cluster, client = replacing_cluster
    wait_for_engines(client, 2, timeout=60)
    conn = Connection.for_client(client, None)
    engine = client.ids[0]
    deadline = time.monotonic() + 10
    while engine not in conn._identities and time.monotonic() < deadline:
        time.sleep(0.05)
    real = conn._identities[engine]
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # the engine's pid now names another process (a reused pid, or a container's own pid 1234)
        fake = (bystander.pid, *real[1:])
        conn._identities[engine] = type(real)(*fake) if hasattr(real, "_fields") else fake
        os.kill(real[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while engine in client.ids and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine not in client.ids
        time.sleep(0.3)  # the orphan killer runs on the unregistration
        assert bystander.poll() is None, "an unrelated process was killed by a stale pid"
    finally:
        bystander.kill()
        bystander.wait()
