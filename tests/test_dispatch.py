"""Eager dispatch on a real cluster (SPEC §14): children go out before their parents end.

A child is sent ``after=`` its parents' tasks, so the cluster starts it the
moment they end, whatever the kernel is doing. When a parent does not finish
(an exception, a fault, an abort, a timeout, a killed engine, a cancel), no
child handler runs, and the run shows what it showed before eager dispatch.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import cloudpickle
import pytest
from conftest import rows, wait_until

import overseer_nb as ov

pytestmark = pytest.mark.cluster

cloudpickle.register_pickle_by_value(sys.modules[__name__])

CHAIN = {"parent": [], "child": ["parent"], "grandchild": ["child"]}


def ran_marker(folder):
    """A handler that leaves a file named for its job when it runs, and returns its input plus one."""

    def handler(job):
        (folder / f"{job.id.split(':', 1)[1]}.{job.attempt}").write_text("ran")
        parents = list(job.inputs.values())
        return (parents[0] + 1) if parents else 0

    return handler


def ran(folder) -> list[str]:
    return sorted(os.listdir(folder))


def sent_ahead_while_parent_runs(run, jobs, parent="parent", timeout=20.0) -> None:
    """Wait until ``jobs`` are out (sent) while ``parent`` has not finished: they were sent ahead of it."""
    wait_until(lambda: set(jobs) <= run.machine.out or run.statuses[parent] != "unstarted"
               and run.statuses[parent] != "started", timeout=timeout)
    assert set(jobs) <= run.machine.out, f"{sorted(jobs)} were not sent while {parent!r} ran"
    assert run.statuses[parent] in ("unstarted", "started")


@pytest.fixture
def marks(tmp_path):
    folder = tmp_path / "ran"
    folder.mkdir()
    return folder


def slow_parent(folder, behaviour, seconds=0.6):
    """A parent that runs ``seconds`` (its children are out meanwhile), then does ``behaviour(job)``."""

    def parent(job):
        (folder / f"parent.{job.attempt}").write_text("ran")
        time.sleep(seconds)
        return behaviour(job)

    return parent


def test_a_child_starts_when_its_parent_ends_while_the_kernel_is_busy(client, tmp_path, marks):
    """The kernel's loop is stalled for 2 s right after the parent starts: the child still starts at once."""
    for eager in (True, False):
        handlers = dict.fromkeys(CHAIN, ran_marker(marks))
        handlers["parent"] = slow_parent(marks, lambda job: 0, seconds=0.3)

        def stall(_run, step):
            if any(t.job == "parent" and t.new == "started" for t in step.transitions):
                time.sleep(2.0)  # a display that takes its time, on the run's own loop thread

        run = ov.run(CHAIN, handlers, cluster=client, journal=False, store=str(tmp_path / "store"), eager=eager)
        run.subscribe(stall)
        run.wait(60)
        assert run.succeeded and run.results["grandchild"] == 2, run.summary()
        parent, child = run.jobs["parent"].attempts[-1], run.jobs["child"].attempts[-1]
        gap = child.start - parent.end  # on the engines' clocks
        if eager:
            assert gap < 0.5, f"the child started {gap:.2f} s after its parent ended"
        else:  # the kernel sends it once it has seen the parent finish: after the stall
            assert gap > 1.0, f"without eager dispatch the child waited only {gap:.2f} s"
        # whatever the order the news came in, a child is shown started only after its parent finished
        assert child.start >= parent.end


def test_a_job_shows_started_in_the_journal_only_once_an_engine_took_it(client, tmp_path, marks):
    journal = tmp_path / "journal.db"
    handlers = dict.fromkeys(CHAIN, ran_marker(marks))
    handlers["parent"] = slow_parent(marks, lambda job: 0)
    run = ov.run(CHAIN, handlers, cluster=client, journal=str(journal), store=str(tmp_path / "store"))
    wait_until(lambda: run.statuses["parent"] == "started", timeout=20)
    sent_ahead_while_parent_runs(run, ["child", "grandchild"])
    assert run.statuses["child"] == "unstarted" and run.display_states["child"] == "unstarted"
    assert "sent already" in run.why("child")
    assert not rows(journal, "SELECT * FROM transitions WHERE job = 'child' AND new = 'started'")
    run.wait(60)
    assert run.succeeded
    moves = rows(journal, "SELECT job, new, at FROM transitions WHERE run_id = ? ORDER BY at", (run.run_id,))
    at = {(job, new): when for job, new, when in moves}
    assert at[("parent", "finished")] <= at[("child", "started")] <= at[("child", "finished")], moves
    assert at[("child", "finished")] <= at[("grandchild", "started")]


def failing_case(name, tmp_path, marks):
    """(options, parent handler, what the run shows after) for each way a parent does not finish."""
    if name == "exception":
        return {}, slow_parent(marks, lambda job: 1 / 0)
    if name == "fault":
        def once(job):
            if job.attempt == 1:
                ov.fault("the service was busy")
            return 10
        return {"fault_backoff": 0.2}, slow_parent(marks, once)
    if name == "retry":
        def flaky(job):
            if job.attempt == 1:
                raise RuntimeError("first try fails")
            return 10
        return {"retries": 1, "retry_delay": 0.2}, slow_parent(marks, flaky)
    if name == "abort":
        return {}, slow_parent(marks, lambda job: ov.abort("nothing to do"))
    if name == "timeout":
        return {"timeout": 0.4}, slow_parent(marks, lambda job: 0, seconds=5)
    raise AssertionError(name)


@pytest.mark.parametrize("case", ["exception", "fault", "retry", "abort", "timeout"])
def test_a_parent_that_does_not_finish_withdraws_its_children_already_sent(client, tmp_path, marks, case):
    options, parent = failing_case(case, tmp_path, marks)
    handlers = dict.fromkeys(CHAIN, ran_marker(marks))
    handlers["parent"] = parent
    run = ov.run(CHAIN, handlers, cluster=client, journal=False, store=str(tmp_path / "store"), **options)
    sent_ahead_while_parent_runs(run, ["child", "grandchild"])
    run.wait(60)
    if case in ("fault", "retry"):  # the parent's next attempt finished: each child ran once, on its result
        assert run.succeeded, run.summary()
        assert run.results["child"] == 11 and run.results["grandchild"] == 12
        numbers = {j: run.jobs[j].attempts[-1].number for j in ("child", "grandchild")}
        assert numbers["child"] > 1  # its first attempt was withdrawn with the parent's first
        assert ran(marks) == sorted(["parent.1", "parent.2", *(f"{j}.{n}" for j, n in numbers.items())])
        assert len(run.jobs["child"].attempts) == 1  # the withdrawn one never ran: it is not kept
        return
    assert ran(marks) == ["parent.1"], "a child handler ran although its parent did not finish"
    expected = {"exception": ("failed", "blocked"), "timeout": ("failed", "blocked"),
                "abort": ("aborted", "aborted")}[case]
    assert run.display_states == {"parent": expected[0], "child": expected[1], "grandchild": expected[1]}
    assert not run.jobs["child"].attempts and not run.jobs["grandchild"].attempts  # none ran
    time.sleep(0.5)  # a withdrawn task the scheduler starts later must not run the handler either
    assert ran(marks) == ["parent.1"]


def test_cancel_withdraws_every_task_waiting_for_its_parents(client, tmp_path, marks):
    graph = {"parent": [], **{f"child{i}": ["parent"] for i in range(5)}, "sink": [f"child{i}" for i in range(5)]}
    handlers = dict.fromkeys(graph, ran_marker(marks))
    handlers["parent"] = slow_parent(marks, lambda job: 0, seconds=1.5)
    run = ov.run(graph, handlers, cluster=client, journal=False, store=str(tmp_path / "store"))
    wait_until(lambda: run.statuses["parent"] == "started", timeout=20)
    wait_until(lambda: len(run.machine.out) == 7, timeout=10)  # all six sent ahead
    run.cancel().wait(30)
    time.sleep(2.0)  # the parent's task ends on its engine; the withdrawn ones must not run
    assert ran(marks) == ["parent.1"]
    assert all(state == "aborted" for state in run.display_states.values()), run.display_states


def test_an_engine_killed_under_a_parent_sends_its_children_again_after_the_retry(own_cluster, tmp_path, marks):
    cluster, client = own_cluster
    pid_file = tmp_path / "pid"

    def parent(job):
        (marks / f"parent.{job.attempt}").write_text("ran")
        if job.attempt == 1:
            pid_file.write_text(str(os.getpid()))
            time.sleep(60)
        return 100

    handlers = dict.fromkeys(CHAIN, ran_marker(marks))
    handlers["parent"] = parent
    run = ov.run(CHAIN, handlers, cluster=client, journal=False, store=str(tmp_path / "store"))
    wait_until(pid_file.exists, timeout=20)
    sent_ahead_while_parent_runs(run, ["child", "grandchild"])
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    run.wait(60)
    assert run.succeeded, run.summary()
    assert run.results["grandchild"] == 102
    assert [a.outcome for a in run.jobs["parent"].attempts] == ["lost", "finished"]
    children = [m for m in ran(marks) if not m.startswith("parent")]
    assert len(children) == 2, f"each child ran once, after the parent's second attempt: {children}"


def test_max_parallel_holds_for_jobs_sent_ahead(client, tmp_path):
    def grid(job):
        return list(range(6))

    def train(job):
        start = time.time()
        time.sleep(0.15)
        return (start, time.time())

    graph = {"grid": [], "train": [ov.each("grid")], "post": [ov.each("train")]}
    handlers = {"grid": grid, "train": ov.handler("train", max_parallel=1)(train), "post": lambda job: job.index}
    run = ov.run(graph, handlers, cluster=client, journal=False, store=str(tmp_path / "store"))
    ahead = set()  # items of post seen out while their train item had not finished
    while not run.done:
        out, statuses = run.machine.out, run.statuses
        ahead |= {k for k in out if k.startswith("post[") and statuses.get("train" + k[4:]) != "finished"}
        time.sleep(0.005)
    run.wait(60)
    assert run.succeeded, run.summary()
    spans = sorted(run.results["train"])
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), "two train items ran at once"
    assert run.results["post"] == list(range(6))
    assert ahead, "no post item was sent ahead of its train item"


def test_a_child_sent_ahead_moves_to_the_engine_that_holds_its_big_input(client, tmp_path):
    """Both children of a 200 MiB result run where it was made and read it from memory there: one that
    started on the other engine while the file was still being written is sent again to the holder."""
    def make(job):
        import numpy

        return numpy.full(25 * 2**20, 2.0)

    def total(job):
        import os

        return float(job.inputs["make"].sum()), os.getpid()

    graph = {"make": [], "left": ["make"], "right": ["make"]}
    pids = dict(zip(client.ids, client[:].apply_sync(os.getpid), strict=True))
    run = ov.run(graph, {"make": make, "left": total, "right": total}, cluster=client, journal=False,
                 store=str(tmp_path / "store")).wait(120)
    assert run.succeeded, run.summary()
    maker = pids[run.jobs["make"].engine]
    assert run.results["left"] == run.results["right"] == (2.0 * 25 * 2**20, maker)
    for job in ("left", "right"):  # a move keeps the attempt that went back, which ran no handler
        assert [a.outcome for a in run.jobs[job].attempts][-1] == "finished"
        assert all(a.error.ename == "Fenced" for a in run.jobs[job].attempts[:-1])


def test_nothing_is_sent_ahead_while_the_engines_have_enough_to_do(client, tmp_path):
    """Twenty ready roots keep both engines busy: their children wait in the kernel, as without eager dispatch."""
    graph = {**{f"root{i}": [] for i in range(20)}, **{f"child{i}": [f"root{i}"] for i in range(20)}}
    handlers = dict.fromkeys(graph, lambda job: time.sleep(0.02))
    run = ov.run(graph, handlers, cluster=client, journal=False, store=str(tmp_path / "store"))
    early = set()  # children seen out while their root had not finished
    while not run.done:
        out, statuses = run.machine.out, run.statuses
        early |= {k for k in out if k.startswith("child") and statuses.get("root" + k[5:]) != "finished"}
        time.sleep(0.002)
    run.wait(60)
    assert run.succeeded, run.summary()
    # only near the end, with fewer than twice the engines' jobs left to start, may one go ahead
    assert len(early) <= 4, sorted(early)
    assert not any(run.jobs[j].stored for j in graph if j.startswith("root") and j[4:] not in {c[5:] for c in early})


def test_eager_must_be_true_or_false_and_nothing_starts_otherwise():
    with pytest.raises(ov.OptionError, match=r"eager must be True or False, got 'yes'"):
        ov.run({"a": []}, {"a": lambda job: 1}, executor=ov.ThreadExecutor(), journal=False, eager="yes")
    assert not ov.Run.in_progress()
