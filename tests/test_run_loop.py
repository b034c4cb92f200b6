"""The run loop with an in-process executor: subscribers, holds, waiting. No cluster."""

from __future__ import annotations

import logging
import threading
import time

import pytest

import overseer_nb as ov

SEED = {"start": [], "result1": ["start"], "result2": ["start"], "finish": ["result1", "result2"]}


def handlers(record=None):
    def h(job):
        if record is not None:
            record.append(job.type)
        return job.type

    return dict.fromkeys(SEED, h)


def test_a_failing_display_never_breaks_the_run(caplog):
    run = ov.run(SEED, handlers(), executor=ov.ThreadExecutor(), args={})
    seen = []

    def broken(run, step):
        seen.append(step)
        raise RuntimeError("display bug")

    run.subscribe(broken)
    run.retry(dry_run=True)
    run.wait(10)
    assert run.succeeded


def test_subscribers_see_every_transition_in_order():
    seen = []
    run = ov.Run(ov.JobGraph(SEED), handlers(), ov.ThreadExecutor(workers=1))
    run.subscribe(lambda r, step: seen.extend((t.job, t.new) for t in step.transitions))
    run.start().wait(10)
    assert seen.index(("start", "finished")) < seen.index(("result1", "started"))
    assert seen[-1] == ("finish", "finished")
    assert len(seen) == 8


def test_a_failing_critical_subscriber_holds_the_run(caplog):
    ran: list[str] = []
    run = ov.Run(ov.JobGraph(SEED), handlers(ran), ov.ThreadExecutor(workers=1))
    calls = []

    def journal(r, step):
        calls.append(step)
        if any(t.new == "finished" for t in step.transitions):
            raise OSError("disk full")

    run.subscribe(journal, critical=True)
    with caplog.at_level(logging.ERROR, logger="overseer_nb"):
        run.start().wait(10)
    assert ran == ["start"]  # nothing was submitted after the write failed
    assert "stopped submitting jobs: disk full" in run.message
    assert run.statuses["result1"] == "unstarted" and run.jobs["result1"].attempts == []
    assert "disk full" in caplog.text


def test_wait_timeout_raises_and_the_run_goes_on():
    gate = threading.Event()
    run = ov.run({"a": []}, {"a": lambda job: gate.wait(10)}, executor=ov.ThreadExecutor())
    with pytest.raises(TimeoutError, match="still running after 0.2 s"):
        run.wait(0.2)
    gate.set()
    assert run.wait(10).statuses == {"a": "finished"}


def test_text_log_reports_failures_as_errors(caplog):
    def boom(job):
        raise KeyError("missing")

    with caplog.at_level(logging.DEBUG, logger="overseer_nb"):
        run = ov.run({"a": [], "b": []}, {"a": boom, "b": lambda job: ov.abort_silent("skip")},
                     executor=ov.ThreadExecutor()).wait(10)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "a started -> failed" in errors[0].getMessage()
    assert any("b started -> aborted" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
    assert run.statuses == {"a": "failed", "b": "aborted"}


def test_empty_graph_finishes_at_once():
    t = time.perf_counter()
    run = ov.run({}, {}, executor=ov.ThreadExecutor()).wait(5)
    assert run.done and run.succeeded and time.perf_counter() - t < 0.5


def test_commands_from_many_threads_are_serialised():
    run = ov.run(SEED, {**handlers(), "result1": lambda job: 1 / 0}, executor=ov.ThreadExecutor()).wait(10)
    results = []
    threads = [threading.Thread(target=lambda: results.append(run.retry(dry_run=True))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [{"result1", "finish"}] * 8


def test_jobs_on_threads_capture_only_their_own_output(capsys):
    gate = threading.Event()

    def talk(job):
        print(f"hello from {job.type}")
        gate.wait(5)
        print(f"bye from {job.type}")

    run = ov.run({"a": [], "b": []}, {"a": talk, "b": talk}, executor=ov.ThreadExecutor())
    time.sleep(0.2)
    print("printed by the notebook meanwhile")
    gate.set()
    run.wait(10)
    for job in ("a", "b"):
        assert run.jobs[job].attempts[0].stdout == f"hello from {job}\nbye from {job}\n"
    assert "printed by the notebook meanwhile" in capsys.readouterr().out


def test_a_done_run_stays_done_when_stale_news_arrives():
    from overseer_nb.events import Ended, EngineLost, EnginesChanged, Started
    from overseer_nb.records import Outcome

    run = ov.run({"a": []}, {"a": lambda job: 1}, executor=ov.ThreadExecutor()).wait(10)
    now = time.time()
    for late in (Started("a", 1, "t", now), Ended("a", 1, Outcome("ok", result=b"x"), now),
                 EngineLost("t", now, "gone", {}), EnginesChanged(3, now)):
        run.report(late)  # what an executor's thread would do
        assert run.done, late
    run.wait(5)
    assert run.statuses == {"a": "finished"} and run.results == {"a": 1}
