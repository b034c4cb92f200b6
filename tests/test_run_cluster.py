"""Runs on a real local ipyparallel cluster of 2 engines."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

import overseer_nb as ov

pytestmark = pytest.mark.cluster

# The engines cannot import this test module: ship its functions by value, as
# functions defined in a notebook are.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SEED = {"start": [], "result1": ["start"], "result2": ["start"], "finish": ["result1", "result2"]}


def log_call(path: Path, name: str) -> None:
    """Append ``name`` to the execution log (a side effect the product does not report)."""
    with open(path, "a") as f:
        f.write(name + "\n")


def calls(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_seed_graph_in_dependency_order_with_parallel_siblings(client):
    def timed(job):
        t0 = time.time()
        time.sleep(0.8 if job.type.startswith("result") else 0.05)
        return {"start": t0, "end": time.time(), "pid": os.getpid()}

    run = ov.run(SEED, dict.fromkeys(SEED, timed), cluster=client).wait(60)
    r = run.results
    assert run.statuses == dict.fromkeys(SEED, "finished")
    for job, parents in SEED.items():
        for p in parents:
            assert r[p]["end"] <= r[job]["start"], (p, job)
    # result1 and result2 ran at the same time, on different engines
    assert r["result1"]["start"] < r["result2"]["end"] and r["result2"]["start"] < r["result1"]["end"]
    assert r["result1"]["pid"] != r["result2"]["pid"]
    assert {run.jobs["result1"].engine, run.jobs["result2"].engine} == set(client.ids)


def test_inputs_and_args_reach_every_job(client):
    handlers = {
        "start": lambda job: job.args["org"],
        "result1": lambda job: job.inputs["start"] + 1,
        "result2": lambda job: job.inputs["start"] * 2,
        "finish": lambda job: (sorted(job.inputs.items()), job.args, job.run_id, job.id, job.attempt),
    }
    run = ov.run(SEED, handlers, args={"org": 123}, cluster=client).wait(60)
    inputs, args, run_id, job_id, attempt = run.results["finish"]
    assert inputs == [("result1", 124), ("result2", 246)]
    assert args == {"org": 123} and run_id == run.run_id and attempt == 1
    assert job_id == f"{run.run_id}:finish"


def test_exception_fails_job_siblings_finish_dependents_blocked(client):
    def ok(job):
        return job.type

    def boom(job):
        raise ValueError("input file missing")

    run = ov.run(SEED, {**dict.fromkeys(SEED, ok), "result1": boom}, cluster=client).wait(60)
    assert run.statuses == {"start": "finished", "result1": "failed", "result2": "finished", "finish": "unstarted"}
    assert run.jobs["finish"].display_state == "blocked"
    err = run.jobs["result1"].error
    assert (err.ename, err.evalue) == ("ValueError", "input file missing")
    assert "boom" in err.traceback and "_engine.py" not in err.traceback
    assert "\x1b[" not in err.traceback  # plain text, no colour codes
    assert run.jobs["finish"].attempts == []


def test_abort_cascades(client):
    def stop(job):
        ov.abort("no data for this org")

    run = ov.run(SEED, {**dict.fromkeys(SEED, lambda job: 1), "start": stop}, cluster=client).wait(60)
    assert run.statuses == dict.fromkeys(SEED, "aborted")
    assert run.jobs["start"].message == "no data for this org"


def test_fault_requeues_then_succeeds_and_gives_up_at_max_faults(client):
    def flaky(job):
        if job.attempt < 3:
            ov.fault(f"busy on attempt {job.attempt}")
        return job.attempt

    g = {"only": []}
    run = ov.run(g, {"only": flaky}, cluster=client, fault_backoff=0.05).wait(60)
    assert run.results == {"only": 3}
    assert [a.outcome for a in run.jobs["only"].attempts] == ["fault", "fault", "finished"]

    run = ov.run(g, {"only": lambda job: ov.fault("always")}, cluster=client, fault_backoff=0.01, max_faults=3).wait(60)
    assert run.statuses == {"only": "failed"}
    assert "faulted 3 times (max_faults=3)" in run.jobs["only"].message


def test_lifecycle_stages_and_harness(client):
    def double_result(f):
        def wrapped(job, result):
            return f(job, result) * 2

        return wrapped

    handler = {
        "pre_process": lambda job: None,  # None keeps the job unchanged
        "process": lambda job: job.args["x"] + 1,
        "post_process": lambda job, result: result + 100,
    }
    run = ov.run(
        {"a": [], "b": []},
        {"a": handler, "b": ov.harness(lambda job: 5, double_result, stage="post_process")},
        args={"x": 1},
        cluster=client,
    ).wait(60)
    assert run.results == {"a": 102, "b": 10}


def test_retry_with_a_replaced_handler_reruns_only_the_failed_subtree(client, tmp_path):
    log = tmp_path / "calls.log"

    def make(name, fail=False):
        def handler(job):
            log_call(log, name)
            if fail:
                raise RuntimeError(f"{name} is broken")
            return name

        return handler

    handlers = {job: make(job) for job in SEED}
    handlers["result1"] = make("result1", fail=True)
    run = ov.run(SEED, handlers, cluster=client).wait(60)
    assert run.statuses["result1"] == "failed", (run.jobs, run.message)
    assert sorted(calls(log)) == ["result1", "result2", "start"]

    handlers["result1"] = make("result1")  # the fix, put in the same mapping
    assert run.retry(dry_run=True) == {"result1", "finish"}
    assert sorted(calls(log)) == ["result1", "result2", "start"]  # dry run ran nothing
    assert run.retry("result1") == {"result1", "finish"}
    run.wait(60)
    assert run.statuses == dict.fromkeys(SEED, "finished")
    assert sorted(calls(log)) == ["finish", "result1", "result1", "result2", "start"]
    assert [a.number for a in run.jobs["result1"].attempts] == [1, 2]


def test_rerun_from_a_finished_job(client, tmp_path):
    log = tmp_path / "calls.log"
    handlers = {job: (lambda name: lambda job: log_call(log, name))(job) for job in SEED}
    run = ov.run(SEED, handlers, cluster=client).wait(60)
    assert run.rerun("result2", dry_run=True) == {"result2", "finish"}
    assert run.rerun("result2") == {"result2", "finish"}
    run.wait(60)
    assert sorted(calls(log)) == ["finish", "finish", "result1", "result2", "result2", "start"]
    with pytest.raises(ov.RunError, match=r"Use run.rerun\(.start.\)"):
        run.retry("start")


def test_retry_of_a_running_job_is_refused(client):
    run = ov.run({"slow": []}, {"slow": lambda job: time.sleep(1.5)}, cluster=client)
    deadline = time.time() + 10
    while run.statuses["slow"] != "started" and time.time() < deadline:
        time.sleep(0.02)
    with pytest.raises(ov.JobRunningError, match="'slow'.*running"):
        run.retry("slow")
    run.wait(60)


def test_cancel_interrupts_running_and_aborts_the_rest(client, tmp_path):
    log = tmp_path / "calls.log"

    def slow(job):
        try:
            time.sleep(30)
        except KeyboardInterrupt:
            log_call(log, "interrupted")
            raise

    run = ov.run(SEED, {**dict.fromkeys(SEED, lambda job: 1), "start": slow}, cluster=client)
    deadline = time.time() + 10
    while run.statuses["start"] != "started" and time.time() < deadline:
        time.sleep(0.02)
    t = time.time()
    run.cancel().wait(10)
    assert time.time() - t < 2
    assert run.statuses == dict.fromkeys(SEED, "aborted")
    deadline = time.time() + 5
    while not calls(log) and time.time() < deadline:
        time.sleep(0.05)
    assert calls(log) == ["interrupted"]  # the engine was really interrupted


def test_timeout_fails_the_job_and_frees_the_engine(client):
    run = ov.run({"slow": [], "after": ["slow"]}, {"slow": lambda job: time.sleep(30), "after": lambda job: 1},
                 cluster=client, timeout=1.0)
    t = time.time()
    run.wait(20)
    assert 0.9 < time.time() - t < 5
    assert run.statuses == {"slow": "failed", "after": "unstarted"}
    assert run.jobs["slow"].error.ename == "TimeoutError"
    assert "timeout of 1 s" in run.jobs["slow"].error.evalue
    # the engine is usable again at once: a short run finishes quickly
    quick = ov.run({"a": [], "b": []}, {"a": lambda job: 1, "b": lambda job: 2}, cluster=client).wait(10)
    assert quick.results == {"a": 1, "b": 2}


def test_unpicklable_result_fails_with_a_clear_message(client):
    import threading

    run = ov.run({"a": []}, {"a": lambda job: threading.Lock()}, cluster=client).wait(60)
    err = run.jobs["a"].error
    assert run.statuses == {"a": "failed"} and err.ename == "UnpicklableResult"
    assert "result of 'a' (lock) cannot be pickled" in err.evalue


def test_stdout_and_stderr_are_captured_per_attempt(client):
    import sys

    def noisy(job):
        print(f"hello from attempt {job.attempt}")
        print("warning!", file=sys.stderr)
        if job.attempt == 1:
            ov.fault("again")

    run = ov.run({"a": []}, {"a": noisy}, cluster=client, fault_backoff=0.01).wait(60)
    a1, a2 = run.jobs["a"].attempts
    assert a1.stdout == "hello from attempt 1\n"
    assert a2.stdout == "hello from attempt 2\n"
    assert a2.stderr == "warning!\n"
    assert a2.engine in client.ids, (a2, client.ids)
    assert a2.start <= a2.end


def test_cluster_argument_checked(client):
    with pytest.raises(ov.ClusterError, match="cluster= takes an ipyparallel Client or Cluster"):
        ov.run({"a": []}, {"a": print}, cluster="localhost")


def test_the_pre_flight_check_and_the_run_pickle_each_handler_once(client, monkeypatch):
    pickled = []
    real = cloudpickle.dumps

    def counting(obj, *args, **kwargs):
        if isinstance(obj, tuple) and len(obj) == 3 and callable(obj[1]):
            pickled.append(obj[1])
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(cloudpickle, "dumps", counting)

    def step(job):
        return job.type

    run = ov.run(SEED, dict.fromkeys(SEED, step), cluster=client).wait(60)
    assert run.succeeded
    assert pickled == [step]  # one handler, four jobs, pre-flight included
