"""Fault injection on real local clusters: what real clusters do to a run.

Each test starts its own cluster (it harms the engines) and stops it.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import psutil
import pytest
from conftest import start_cluster, stop_cluster, wait_for_engines, wait_until

import overseer_nb as ov

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def pid_writer(pid_file: Path, attempts=(1,), sleep=60):
    def handler(job):
        if job.attempt in attempts:
            pid_file.write_text(str(os.getpid()))
            time.sleep(sleep)
        return os.getpid()

    return handler


def test_poison_job_fails_after_three_lost_engines_and_others_finish(own_cluster):
    cluster, client = own_cluster

    def poison(job):
        time.sleep(0.2)
        os._exit(1)

    graph = {"poison": [], "after_poison": ["poison"], "other": [], "after_other": ["other"]}
    handlers = {"poison": poison, "after_poison": lambda job: 1, "other": lambda job: time.sleep(0.5) or 2,
                "after_other": lambda job: job.inputs["other"] + 1}
    run = ov.run(graph, handlers, cluster=cluster)  # a Cluster: dead engines are replaced
    run.wait(120)
    assert run.statuses == {"poison": "failed", "after_poison": "unstarted", "other": "finished",
                            "after_other": "finished"}
    assert "its engine was lost 3 times" in run.jobs["poison"].message
    assert [a.outcome for a in run.jobs["poison"].attempts] == ["lost", "lost", "lost"]
    wait_for_engines(client, 2, timeout=60)  # the cluster got replacement engines


def test_host_loss_engine_and_nanny_killed_is_detected_by_heartbeat(own_cluster, tmp_path):
    cluster, client = own_cluster
    pid_file = tmp_path / "pid"
    run = ov.run({"victim": []}, {"victim": pid_writer(pid_file)}, cluster=client)
    wait_until(pid_file.exists)
    engine = psutil.Process(int(pid_file.read_text()))
    family = [engine, *engine.children(recursive=True)]
    assert len(family) >= 2, "expected the engine's nanny process"
    killed_at = time.time()
    for p in family:
        p.kill()
    run.wait(60)
    first = run.jobs["victim"].attempts[0]
    assert run.statuses == {"victim": "finished"}
    assert first.outcome == "lost"
    assert first.end - killed_at < 6.0  # heartbeats every 0.5 s, 3 misses


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie not yet reaped counts: it runs no more)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # it ended between two looks, or long ago
        return True


def test_frozen_engine_is_requeued_and_its_orphan_killed(own_cluster, tmp_path):
    cluster, client = own_cluster
    pid_file = tmp_path / "pid"
    run = ov.run({"victim": []}, {"victim": pid_writer(pid_file, sleep=3)}, cluster=client)
    wait_until(pid_file.exists)
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGSTOP)
    frozen_at = time.time()
    run.wait(60)
    first, second = run.jobs["victim"].attempts[:2]
    assert first.outcome == "lost" and first.end - frozen_at < 6.0
    assert run.statuses == {"victim": "finished"} and run.results["victim"] != pid
    wait_until(lambda: gone(pid), 10)
    # attempt fencing: nothing from the old attempt can change the job now
    assert run.jobs["victim"].attempts[-1].outcome == "finished"


def test_no_engines_says_so_and_goes_on_when_engines_join(own_cluster):
    cluster, client = own_cluster
    from overseer_nb.execution import engine_identity

    for pid, _host in client[:].apply_sync(engine_identity):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: len(client.ids) == 0, 20)
    run = ov.run({"a": [], "b": ["a"]}, {"a": lambda job: 1, "b": lambda job: job.inputs["a"] + 1},
                 cluster=client, preflight=False)
    t = time.time()
    run.wait(10)  # returns: nothing can progress
    assert time.time() - t < 5
    assert run.message.startswith("no engines")
    assert run.statuses == {"a": "unstarted", "b": "unstarted"}
    cluster.start_engines_sync(n=1)
    wait_until(lambda: run.statuses["b"] == "finished", 60)
    assert run.results == {"a": 1, "b": 2} and run.message == ""


def test_controller_killed_is_detected_and_resume_on_a_new_cluster_runs_only_unfinished(tmp_path):
    log = tmp_path / "calls.log"

    def step(job):
        with open(log, "a") as f:
            f.write(job.type + "\n")
        if job.type == "slow":
            time.sleep(60)
        return job.type

    from overseer_nb.execution import engine_identity

    cluster, client = start_cluster()
    # every process of this cluster, to clean up by PID: its controller (and the
    # schedulers it forked), its engines and their nannies
    controller = psutil.Process(cluster.controller.process.pid)
    doomed = [controller, *controller.children(recursive=True)]
    for pid, _host in client[:].apply_sync(engine_identity):
        engine = psutil.Process(pid)
        doomed += [engine, *engine.children(recursive=True)]
    try:
        run = ov.run({"first": [], "slow": ["first"], "last": ["slow"]}, dict.fromkeys(["first", "slow", "last"], step),
                     cluster=client, journal=False)
        wait_until(lambda: run.statuses["slow"] == "started", 30)
        killed_at = time.time()
        controller.kill()
        run.wait(30)
        detected = run.jobs["slow"].attempts[0].end - killed_at
        assert detected < 10, detected
        assert run.statuses == {"first": "finished", "slow": "unstarted", "last": "unstarted"}
        assert run.jobs["slow"].display_state == "requeued"
        assert "stopped answering" in run.message
    finally:
        for p in doomed:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        for end in (client.close, cluster.stop_cluster_sync):
            try:
                end()
            except Exception:
                pass

    def step2(job):
        with open(log, "a") as f:
            f.write(job.type + "\n")
        return job.type

    cluster2, client2 = start_cluster()
    try:
        run.resume({"first": step2, "slow": step2, "last": step2}, cluster=client2)
        run.wait(60)
        assert run.statuses == dict.fromkeys(["first", "slow", "last"], "finished")
        assert log.read_text().split() == ["first", "slow", "slow", "last"]
    finally:
        stop_cluster(cluster2, client2)


def test_timeout_kills_a_job_that_swallows_interrupts_and_replaces_its_engine(own_cluster):
    cluster, client = own_cluster

    def stubborn(job):
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                time.sleep(0.05)
            except KeyboardInterrupt:
                pass

    run = ov.run({"stubborn": [], "fine": []}, {"stubborn": stubborn, "fine": lambda job: 1},
                 cluster=cluster, timeout=1.0, kill_grace=1.0)
    t = time.time()
    run.wait(30)
    assert time.time() - t < 10
    assert run.statuses == {"stubborn": "failed", "fine": "finished"}
    assert run.jobs["stubborn"].error.ename == "TimeoutError"
    wait_for_engines(client, 2, timeout=60)  # the killed engine was replaced
    again = ov.run({"a": [], "b": []}, {"a": lambda job: 1, "b": lambda job: 2}, cluster=client).wait(30)
    assert again.succeeded


def test_sys_exit_big_output_and_size_policy(client):
    def exits(job):
        sys.exit(3)

    def chatty(job):
        for _ in range(5):
            print("x" * 1_000_000)
        return "done"

    def huge(job):
        return b"\0" * 50_000_000

    run = ov.run({"exits": [], "chatty": [], "huge": []}, {"exits": exits, "chatty": chatty, "huge": huge},
                 cluster=client, max_result_bytes=10_000_000).wait(120)
    assert run.statuses == {"exits": "failed", "chatty": "finished", "huge": "failed"}
    assert run.jobs["exits"].error.ename == "SystemExit"
    out = run.jobs["chatty"].attempts[-1].stdout
    assert len(out) < 1_100_000 and "characters not kept" in out
    err = run.jobs["huge"].error
    assert err.ename == "ResultTooLarge" and "max_result_bytes=10,000,000" in err.evalue


def test_ctrl_c_in_wait_leaves_a_consistent_run(client):
    run = ov.run({"slow": [], "after": ["slow"]}, {"slow": lambda job: time.sleep(3), "after": lambda job: 1},
                 cluster=client)
    threading.Timer(0.5, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        run.wait(30)
    assert run.statuses["slow"] in ("started", "unstarted") and run.statuses["after"] == "unstarted"
    run.cancel().wait(10)
    assert run.statuses == {"slow": "aborted", "after": "aborted"}


def test_module_missing_on_engines_is_named_before_anything_runs(client, tmp_path):
    marker = tmp_path / "ran"

    def uses_missing(job):
        import overseer_nb_no_such_module  # noqa: F401

        marker.write_text("ran")

    with pytest.raises(ov.HandlerError) as info:
        ov.run({"load": [], "fit": ["load"]}, {"load": lambda job: 1, "fit": uses_missing}, cluster=client)
    assert "'fit'" in str(info.value) and "overseer_nb_no_such_module" in str(info.value)
    assert not marker.exists()


def test_big_graph_runs_with_flat_overhead(client):
    wide = {f"j{i}": [] for i in range(2000)}
    t = time.perf_counter()
    run = ov.run(wide, dict.fromkeys(wide, lambda job: None), cluster=client).wait(120)
    assert run.succeeded
    assert time.perf_counter() - t < 60
