"""``run.why(job)``: one line saying why a job is not running, for each reason it can wait."""

from __future__ import annotations

import random

import pytest

import overseer_nb as ov
from overseer_nb.machine import RunMachine
from overseer_nb.options import RunOptions
from overseer_nb.records import ErrorInfo, Outcome
from overseer_nb.states import HOLD_NO_ENGINES
from overseer_nb.why import why_waiting

GRAPH = ov.JobGraph({"a": [], "b": [], "c": ["a", "b"], "d": ["c"]})


def machine(graph=GRAPH, **opts):
    return RunMachine(graph, RunOptions(**opts), rng=random.Random(0))


def test_each_reason_a_job_waits():
    m = machine(fault_backoff=10)
    m.tick(0)
    assert why_waiting(m, "a", 0) == "sent, waiting for an engine (0 busy)"
    assert why_waiting(m, "c", 0) == "waiting for parents 'a', 'b'"
    m.started("a", 1, 3, 1)
    assert why_waiting(m, "a", 1) == "running on engine 3 (attempt 1)"
    m.ended("a", 1, Outcome("ok", result=b"x"), 2)
    m.started("b", 1, 0, 2)
    m.ended("b", 1, Outcome("fault", message="busy"), 3)
    assert why_waiting(m, "b", 4).startswith("waiting for backoff (") and "s left) after fault" in why_waiting(m, "b", 4)
    assert why_waiting(m, "c", 4) == "waiting for parent 'b'"
    m.tick(20)  # the backoff ended: b is sent again
    m.started("b", 2, 0, 21)
    m.ended("b", 2, Outcome("error", error=ErrorInfo("ValueError", "bad")), 22)
    assert why_waiting(m, "d", 22) == "blocked by 'b' failed; retry it to go on"
    assert why_waiting(m, "b", 22) == "failed: ValueError: bad"


def test_holds_caps_and_the_window():
    m = machine(GRAPH)
    m.pause(HOLD_NO_ENGINES, 0)
    assert why_waiting(m, "a", 0) == "held (no engines): nothing is sent until that ends"
    grid = ov.JobGraph({"grid": [], "train": [ov.each("grid")]})
    m = RunMachine(grid, RunOptions(), job_options={"train": RunOptions(max_parallel=1)}, rng=random.Random(0))
    m.tick(0)
    assert why_waiting(m, "train", 0) == "waiting for 'grid' to finish: its result says how many items 'train' has"
    m.started("grid", 1, 0, 1)
    m.ended("grid", 1, Outcome("ok", result=b"x", length=3), 2)
    assert why_waiting(m, "train[1]", 2) == "capped by max_parallel=1 (1 of 'train' out)"
    m = machine(ov.JobGraph({f"j{i}": [] for i in range(4)}))
    m.max_out = 2
    m.tick(0)
    assert why_waiting(m, "j3", 0) == "ready, in the queue: at most 2 attempts are out at once"


def test_run_why_names_unknown_jobs():
    run = ov.run({"grid": [], "train": [ov.each("grid")]}, {"grid": lambda job: [1, 2], "train": lambda job: 1},
                 executor=ov.ThreadExecutor(), journal=False).wait(10)
    assert run.why("train[1]") == "finished"
    with pytest.raises(ov.UnknownJobError, match=r"'train\[5\]' is not an item of 'train' \(it has 2\)"):
        run.why("train[5]")
    with pytest.raises(ov.UnknownJobError, match="did you mean 'grid'"):
        run.why("gird")


def test_the_job_panel_says_what_an_unstarted_job_waits_for():
    from overseer_nb.display.details import job_details

    def broken(job):
        raise ValueError("no")

    run = ov.run({"a": [], "b": ["a"]}, {"a": broken, "b": lambda job: 1}, executor=ov.ThreadExecutor(),
                 journal=False).wait(10)
    assert job_details(run, "b")["why"] == "blocked by 'a' failed; retry it to go on"
    assert job_details(run, "a")["why"] == ""  # it ran: the panel shows its traceback instead
