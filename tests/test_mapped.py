"""Mapped job types (SPEC §12) on a real cluster: one job per item of a parent's result."""

from __future__ import annotations

import time

import pytest

import overseer_nb as ov
from overseer_nb.errors import GraphError, ParentsError, SelfDependencyError, UnknownParentError


def sweep_handlers(delay: float = 0.0, fail: set | None = None):
    """grid -> 4 values; train: each grid, data; best: train. ``fail``: items that raise."""
    fail = set(fail or ())

    def grid(job):
        return [1, 2, 3, 4]

    def data(job):
        return 10

    def train(job):
        import os
        import time

        time.sleep(delay)
        if job.index in fail:
            raise ValueError(f"bad value {job.inputs['grid']}")
        return {"value": job.inputs["grid"] * job.inputs["data"], "pid": os.getpid(), "at": time.time()}

    def best(job):
        return max((r["value"] for r in job.inputs["train"]), default=None)

    return {"grid": grid, "data": data, "train": train, "best": best}


SWEEP = {"grid": [], "data": [], "train": [ov.each("grid"), "data"], "best": ["train"]}


@pytest.mark.cluster
def test_items_run_in_parallel_and_the_reducer_gets_their_results_in_order(client):
    run = ov.run(SWEEP, sweep_handlers(delay=0.3), cluster=client, journal=False).wait(60)
    assert run.succeeded, run.summary()
    assert run.statuses == {"grid": "finished", "data": "finished", "train": "finished", "best": "finished"}
    assert [r["value"] for r in run.results["train"]] == [10, 20, 30, 40]
    assert run.results["best"] == 40
    items = run.jobs["train"].items
    assert [i.key for i in items] == ["train[0]", "train[1]", "train[2]", "train[3]"]
    assert run.jobs["train[2]"] is items[2] and items[2].index == 2 and items[2].type == "train"
    assert len({r["pid"] for r in run.results["train"]}) == 2  # on both engines at once
    spans = [(i.attempts[-1].start, i.attempts[-1].end) for i in items]
    assert any(a[0] < b[1] and b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))  # overlapping
    assert run.counts()["finished"] == 3 + 4  # items count as jobs; the mapped type itself does not


@pytest.mark.cluster
def test_an_element_wise_map_starts_each_item_when_its_own_parent_item_finished(client):
    def grid(job):
        return [0.0, 1.5]

    def train(job):
        import time

        time.sleep(job.inputs["grid"])
        return job.index

    def evaluate(job):
        import time

        return {"of": job.inputs["train"], "at": time.time()}

    graph = {"grid": [], "train": [ov.each("grid")], "evaluate": [ov.each("train")]}
    run = ov.run(graph, {"grid": grid, "train": train, "evaluate": evaluate}, cluster=client, journal=False).wait(60)
    assert run.succeeded, run.summary()
    assert [r["of"] for r in run.results["evaluate"]] == [0, 1]
    # evaluate[0] ran before train[1] (sleeping 1.5 s) was done: item by item, not after the whole map
    assert run.results["evaluate"][0]["at"] < run.jobs["train[1]"].attempts[-1].end


@pytest.mark.cluster
def test_a_failed_item_blocks_the_reducer_and_is_retried_alone_after_a_fix(client):
    handlers = sweep_handlers(fail={2})
    run = ov.run(SWEEP, handlers, cluster=client, journal=False).wait(60)
    assert run.statuses["train"] == "failed" and run.display_states["best"] == "blocked"
    assert run.jobs["train[2]"].status == "failed" and "bad value 3" in str(run.jobs["train[2]"].error)
    assert [run.jobs[f"train[{i}]"].status for i in (0, 1, 3)] == ["finished"] * 3
    run.handlers = sweep_handlers()  # the fix
    assert run.retry("train[2]") == {"train[2]", "best"}
    run.wait(60)
    assert run.succeeded and run.results["best"] == 40
    assert [len(run.jobs[f"train[{i}]"].attempts) for i in range(4)] == [1, 1, 2, 1]
    assert len(run.jobs["grid"].attempts) == 1


@pytest.mark.cluster
def test_an_empty_list_gives_no_items_and_a_non_list_fails_the_mapped_type(client):
    handlers = sweep_handlers()
    handlers["grid"] = lambda job: []
    run = ov.run(SWEEP, handlers, cluster=client, journal=False).wait(60)
    assert run.succeeded and run.results["train"] == [] and run.jobs["train"].items == []

    handlers["grid"] = lambda job: {"a": 1}
    run = ov.run(SWEEP, handlers, cluster=client, journal=False).wait(60)
    assert run.statuses["train"] == "failed" and run.display_states["best"] == "blocked"
    msg = run.jobs["train"].message
    assert "maps over 'grid', whose result is dict, not a list" in msg and "make 'grid' return a list" in msg
    handlers["grid"] = lambda job: [5, 6]  # fix the parent, retry: it maps anew
    run.handlers = handlers
    assert run.retry() == {"grid", "best"}
    run.wait(60)
    assert run.succeeded and [r["value"] for r in run.results["train"]] == [50, 60]


@pytest.mark.cluster
def test_rerunning_the_parent_maps_again_with_a_new_number_of_items(client):
    handlers = sweep_handlers()
    run = ov.run(SWEEP, handlers, cluster=client, journal=False).wait(60)
    handlers["grid"] = lambda job: [7, 8]
    run.handlers = handlers
    selected = run.rerun("grid")
    assert {"grid", "train[0]", "train[3]", "best"} <= selected and "train" not in selected
    run.wait(60)
    assert run.succeeded and [r["value"] for r in run.results["train"]] == [70, 80] and run.results["best"] == 80
    assert "train[3]" not in run.jobs


@pytest.mark.cluster
def test_max_parallel_caps_the_items_out_at_once(client):
    handlers = sweep_handlers(delay=0.3)
    handlers["train"] = ov.handler("train", max_parallel=1)(handlers["train"])
    run = ov.run(SWEEP, handlers, cluster=client, journal=False).wait(60)
    assert run.succeeded
    spans = sorted((i.attempts[-1].start, i.attempts[-1].end) for i in run.jobs["train"].items)
    assert all(a[1] <= b[0] + 0.05 for a, b in zip(spans, spans[1:], strict=False))  # one at a time


@pytest.mark.cluster
def test_resume_runs_only_the_unfinished_items_of_a_half_done_map(client, tmp_path):
    journal = str(tmp_path / "j.sqlite")
    run = ov.run(SWEEP, sweep_handlers(fail={1, 3}), cluster=client, journal=journal).wait(60)
    assert run.statuses["train"] == "failed"
    loaded = ov.load_run(run.run_id, journal=journal)
    assert loaded.statuses == run.statuses
    assert [loaded.jobs[f"train[{i}]"].status for i in range(4)] == ["finished", "failed", "finished", "failed"]
    assert loaded.jobs["train[0]"].result["value"] == 10
    loaded.resume(sweep_handlers(), cluster=client).wait(60)
    assert loaded.succeeded and loaded.results["best"] == 40
    assert [len(loaded.jobs[f"train[{i}]"].attempts) for i in range(4)] == [1, 2, 1, 2]
    again = ov.load_run(run.run_id, journal=journal)
    assert again.statuses["train"] == "finished" and len(again.jobs["train"].items) == 4


def test_graph_errors_name_the_problem():
    with pytest.raises(UnknownParentError, match="did you mean 'grid'"):
        ov.JobGraph({"grid": [], "train": [ov.each("gird")]})
    with pytest.raises(ParentsError, match="maps over at most one parent"):
        ov.JobGraph({"a": [], "b": [], "c": [ov.each("a"), ov.each("b")]})
    with pytest.raises(SelfDependencyError):
        ov.JobGraph({"a": [ov.each("a")]})
    with pytest.raises(GraphError, match=r"contains '\[' or '\]'"):
        ov.JobGraph({"a[1]": []})
    graph = ov.JobGraph(SWEEP)
    assert graph.mapped == ("train",) and graph.each_of("train") == "grid"
    assert ov.JobGraph(graph.to_json()) == graph  # as the journal keeps it


def test_unknown_items_are_refused_with_what_is_known(client=None):
    spy_run = ov.run(SWEEP, sweep_handlers(), executor=ov.ThreadExecutor(), journal=False).wait(10)
    with pytest.raises(ov.UnknownJobError, match=r"'train\[9\]' is not an item of 'train': it has 4 items"):
        spy_run.retry("train[9]")
    with pytest.raises(ov.RunError, match="none of its 4 items failed"):
        spy_run.retry("train")
    t0 = time.time()
    assert spy_run.rerun("train") == {f"train[{i}]" for i in range(4)} | {"best"}
    spy_run.wait(10)
    assert spy_run.succeeded and all(len(i.attempts) == 2 for i in spy_run.jobs["train"].items)
    assert spy_run.jobs["grid"].attempts[-1].end < t0


@pytest.mark.cluster
def test_timeouts_faults_and_big_results_hold_per_item(client, tmp_path):
    def grid(job):
        return [0, 1, 2, 3]

    @ov.handler("train", timeout=1.0, max_faults=3)
    def train(job):
        import time

        import numpy as np

        if job.index == 1:
            time.sleep(30)  # times out alone
        if job.index == 2 and job.attempt == 1:
            ov.fault("a flaky first try")
        return np.full(200_000, float(job.index))  # 1.6 MB: through the result store

    def best(job):
        return [float(a.sum()) for a in job.inputs["train"]]

    handlers = {"grid": grid, "train": train, "best": best}
    run = ov.run(SWEEP_NO_DATA, handlers, cluster=client, journal=False, store=str(tmp_path),
                 fault_backoff=0.1).wait(60)
    assert run.jobs["train[1]"].status == "failed" and run.jobs["train[1]"].error.ename == "TimeoutError"
    assert run.jobs["train[2]"].status == "finished" and len(run.jobs["train[2]"].attempts) == 2
    assert run.jobs["train[0]"].stored is not None  # kept in the store, not in the kernel
    assert run.display_states["best"] == "blocked"
    run.handlers = {**handlers, "train": ov.handler("train")(lambda job: __import__("numpy").full(200_000, 1.0))}
    run.retry("train[1]")
    run.wait(60)
    assert run.results["best"] == [0.0, 200_000.0, 400_000.0, 600_000.0]


@pytest.mark.cluster
def test_cancel_aborts_the_unfinished_items_and_their_type(client):
    def grid(job):
        return list(range(6))

    def train(job):
        import time

        time.sleep(0.2 if job.index < 2 else 30)
        return job.index

    run = ov.run(SWEEP_NO_DATA, {"grid": grid, "train": train, "best": lambda job: 0}, cluster=client,
                 journal=False)
    deadline = time.monotonic() + 30
    while run.jobs.get("train[1]") is None or run.jobs["train[1]"].status != "finished":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run.cancel().wait(30)
    assert [run.jobs[f"train[{i}]"].status for i in range(6)][:2] == ["finished", "finished"]
    assert all(run.jobs[f"train[{i}]"].status == "aborted" for i in range(2, 6))
    assert run.statuses["train"] == "aborted" and run.statuses["best"] == "aborted"


SWEEP_NO_DATA = {"grid": [], "train": [ov.each("grid")], "best": ["train"]}
