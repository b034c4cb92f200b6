"""The pure state machine: feed events, compare transitions and instructions. No cluster."""

import random

import pytest

from overseer_nb import JobGraph
from overseer_nb.errors import JobRunningError, RunError
from overseer_nb.machine import Interrupt, RunMachine, Submit, Withdraw
from overseer_nb.options import RunOptions, backoff_delay
from overseer_nb.records import ErrorInfo, Outcome
from overseer_nb.states import TRANSITIONS, check_transition, display_state

SEED = JobGraph({"start": [], "result1": ["start"], "result2": ["start"], "finish": ["result1", "result2"]})


def machine(graph=SEED, **opts):
    return RunMachine(graph, RunOptions(**opts), rng=random.Random(0))


def submits(step):
    return [(i.job, i.attempt) for i in step.instructions if isinstance(i, Submit)]


def moves(step):
    return [(t.job, t.old, t.new, t.reason) for t in step.transitions]


def ok(value=b"x"):
    return Outcome("ok", result=value)


def run_job(m, job, outcome, at=1.0, engine=0):
    """Start and end the current attempt of ``job``; one Step with both."""
    attempt = m.records[job].attempts[-1].number
    first = m.started(job, attempt, engine, at)
    second = m.ended(job, attempt, outcome, at)
    second.transitions[:0] = first.transitions
    second.instructions[:0] = first.instructions
    return second


def test_seed_graph_runs_in_dependency_order():
    m = machine()
    assert submits(m.tick(0)) == [("start", 1)]
    step = run_job(m, "start", ok(b"s"))
    assert moves(step) == [
        ("start", "unstarted", "started", "engine took it"),
        ("start", "started", "finished", "returned"),
    ]
    assert submits(step) == [("result1", 1), ("result2", 1)]
    assert [i.inputs for i in step.instructions] == [{"start": b"s"}, {"start": b"s"}]
    run_job(m, "result1", ok())
    step = run_job(m, "result2", ok())
    assert submits(step) == [("finish", 1)]
    run_job(m, "finish", ok())
    assert m.is_idle()
    assert {j: m.status(j) for j in SEED} == dict.fromkeys(SEED, "finished")


def test_exception_fails_and_blocks_descendants_only():
    m = machine()
    m.tick(0)
    run_job(m, "start", ok())
    step = run_job(m, "result1", Outcome("error", error=ErrorInfo("ValueError", "bad")))
    assert ("result1", "started", "failed", "exception") in moves(step)
    assert step.display["finish"] == "blocked"
    assert m.status("finish") == "unstarted" and m.display_state("finish") == "blocked"
    run_job(m, "result2", ok())
    assert m.is_idle() and m.status("result2") == "finished"
    assert m.records["result1"].error.ename == "ValueError"


def test_abort_cascades_to_every_dependent():
    m = machine()
    m.tick(0)
    step = run_job(m, "start", Outcome("abort", message="no data"))
    assert moves(step) == [
        ("start", "unstarted", "started", "engine took it"),
        ("start", "started", "aborted", "abort"),
        ("result1", "unstarted", "aborted", "parent aborted"),
        ("result2", "unstarted", "aborted", "parent aborted"),
        ("finish", "unstarted", "aborted", "parent aborted"),
    ]
    assert m.is_idle()


def test_silent_abort_keeps_no_traceback():
    m = machine()
    m.tick(0)
    run_job(m, "start", Outcome("abort", message="quiet", silent=True, error=ErrorInfo("Abort", "quiet", "tb")))
    assert m.records["start"].attempts[-1].error.traceback == ""
    assert m.status("finish") == "aborted"


def test_fault_backs_off_then_retries_then_gives_up():
    m = machine(max_faults=3, fault_backoff=1.0, fault_backoff_max=10.0)
    m.tick(0)
    step = run_job(m, "start", Outcome("fault", message="busy"), at=1.0)
    assert ("start", "started", "unstarted", "fault") in moves(step)
    assert m.display_state("start") == "retrying"
    assert submits(step) == []
    wake = m.next_wakeup()
    assert 1.5 <= wake <= 2.0  # first backoff: 0.5-1.0 s (equal jitter)
    assert submits(m.tick(wake - 0.01)) == []
    assert submits(m.tick(wake)) == [("start", 2)]
    run_job(m, "start", Outcome("fault", message="busy"), at=wake)
    wake2 = m.next_wakeup()
    assert 1.0 <= wake2 - wake <= 2.0  # second backoff doubles: 1-2 s
    m.tick(wake2)
    step = run_job(m, "start", Outcome("fault", message="still busy"), at=wake2)
    assert ("start", "started", "failed", "faulted too often") in moves(step)
    assert "faulted 3 times (max_faults=3)" in m.records["start"].message
    assert "still busy" in m.records["start"].message
    assert [a.outcome for a in m.records["start"].attempts] == ["fault", "fault", "fault"]


def test_backoff_is_capped():
    rng = random.Random(1)
    delays = [backoff_delay(n, 1.0, 8.0, rng) for n in range(1, 12)]
    assert all(d <= 8.0 for d in delays) and max(delays) > 4.0


def test_automatic_retries_on_exceptions():
    m = machine(retries=1, retry_delay=5.0)
    m.tick(0)
    step = run_job(m, "start", Outcome("error", error=ErrorInfo("E", "1")), at=1.0)
    assert ("start", "started", "unstarted", "automatic retry") in moves(step)
    assert m.display_state("start") == "retrying" and m.next_wakeup() == 6.0
    assert submits(m.tick(6.0)) == [("start", 2)]
    step = run_job(m, "start", Outcome("error", error=ErrorInfo("E", "2")), at=7.0)
    assert ("start", "started", "failed", "exception") in moves(step)


def test_per_job_options_override_the_run():
    m = RunMachine(SEED, RunOptions(), {"start": RunOptions(retries=2)})
    m.tick(0)
    run_job(m, "start", Outcome("error", error=ErrorInfo("E", "1")))
    assert m.status("start") == "unstarted"


def test_engine_lost_requeues_then_fails_after_three():
    m = machine()
    m.tick(0)
    for n in (1, 2):
        m.started("start", n, 7, 1.0)
        step = m.engine_lost(7, 2.0, "engine 7 died", {("start", n): ("partial out", "")})
        assert ("start", "started", "unstarted", "engine lost") in moves(step)
        assert m.display_state("start") == "requeued" or submits(step) == [("start", n + 1)]
        assert submits(step) == [("start", n + 1)]
        assert m.records["start"].attempts[n - 1].stdout == "partial out"
    m.started("start", 3, 7, 1.0)
    step = m.engine_lost(7, 3.0)
    assert ("start", "started", "failed", "engine lost too often") in moves(step)
    assert "its engine was lost 3 times" in m.records["start"].message


def test_late_result_of_an_old_attempt_is_ignored():
    m = machine()
    m.tick(0)
    m.started("start", 1, 0, 1.0)
    m.engine_lost(0, 2.0)
    # attempt 2 was submitted; attempt 1's result arrives late
    assert not m.ended("start", 1, ok(b"stale"), 3.0)
    assert m.status("start") == "unstarted"
    run_job(m, "start", ok(b"fresh"))
    assert m.records["start"].result_bytes == b"fresh"


def test_result_before_started_news():
    m = machine()
    m.tick(0)
    step = m.ended("start", 1, Outcome("ok", result=b"r", engine=3, started=0.5, ended=0.7), 1.0)
    assert moves(step)[:2] == [
        ("start", "unstarted", "started", "engine took it"),
        ("start", "started", "finished", "returned"),
    ]
    assert not m.started("start", 1, 3, 1.1)  # the late news changes nothing
    assert m.records["start"].attempts[0].engine == 3


def test_timeout_fails_and_interrupts():
    m = machine(timeout=10.0, kill_grace=2.0)
    m.tick(0)
    m.started("start", 1, 4, 1.0)
    assert m.next_wakeup() == 11.0
    step = m.tick(11.0)
    assert ("start", "started", "failed", "timeout") in moves(step)
    assert Interrupt("start", 1, 4, 2.0) in step.instructions
    assert m.records["start"].error.ename == "TimeoutError"
    assert not m.ended("start", 1, ok(), 12.0)  # a result after the deadline is ignored


def test_retry_subtree_and_dry_run():
    m = machine()
    m.tick(0)
    run_job(m, "start", ok())
    run_job(m, "result1", Outcome("error", error=ErrorInfo("E", "x")))
    run_job(m, "result2", ok())
    assert m.retry("result1", 5.0, dry_run=True).selected == {"result1", "finish"}
    assert m.status("result1") == "failed"  # dry run changed nothing
    step = m.retry("result1", 5.0)
    assert step.selected == {"result1", "finish"}
    assert ("result1", "failed", "unstarted", "retry") in moves(step)
    assert submits(step) == [("result1", 2)]
    assert m.display_state("finish") == "unstarted"
    run_job(m, "result1", ok())
    assert m.status("finish") == "unstarted" and m.records["finish"].attempts[-1].number == 1


def test_retry_refusals_name_the_job():
    m = machine()
    m.tick(0)
    m.started("start", 1, 0, 1.0)
    with pytest.raises(JobRunningError, match="'start'.*running"):
        m.retry("start", 2.0)
    m.ended("start", 1, Outcome("error", error=ErrorInfo("E", "x")), 2.0)
    with pytest.raises(RunError, match="blocked by 'start'"):
        m.retry("finish", 3.0)
    with pytest.raises(RunError, match="did you mean 'start'"):
        m.retry("strat", 3.0)


def test_retry_all_leaves_jobs_blocked_by_others():
    g = JobGraph({"a": [], "b": [], "c": ["a", "b"]})
    m = machine(g)
    m.tick(0)
    run_job(m, "a", Outcome("error", error=ErrorInfo("E", "a")))
    run_job(m, "b", Outcome("error", error=ErrorInfo("E", "b")))
    assert m.retry("a", 1.0, dry_run=True).selected == {"a"}  # c stays blocked by b
    assert m.retry(None, 1.0, dry_run=True).selected == {"a", "b", "c"}


def test_rerun_runs_finished_descendants_again():
    m = machine()
    m.tick(0)
    for job in ("start", "result1", "result2", "finish"):
        run_job(m, job, ok())
    assert m.rerun("result1", 2.0, dry_run=True).selected == {"result1", "finish"}
    step = m.rerun("result1", 2.0)
    assert moves(step) == [
        ("result1", "finished", "unstarted", "rerun"),
        ("finish", "finished", "unstarted", "rerun"),
    ]
    assert submits(step) == [("result1", 2)]
    assert m.records["finish"].result_bytes is None


def test_cancel_aborts_unfinished_and_interrupts_running():
    m = machine()
    m.tick(0)
    run_job(m, "start", ok())
    m.started("result1", 1, 5, 1.0)  # result2 is queued, not started
    step = m.cancel(2.0)
    assert Interrupt("result1", 1, 5, 5.0) in step.instructions
    assert Withdraw("result2", 1) in step.instructions
    assert {j: m.status(j) for j in SEED} == {
        "start": "finished", "result1": "aborted", "result2": "aborted", "finish": "aborted"
    }
    assert m.is_idle()
    assert not m.ended("result1", 1, ok(), 3.0)


def test_unsendable_fails_without_starting():
    m = machine()
    m.tick(0)
    step = m.ended("start", 1, Outcome("unsendable", error=ErrorInfo("PicklingError", "no")), 1.0)
    assert moves(step)[0] == ("start", "unstarted", "failed", "not sendable")


def test_transition_table_is_the_rule():
    for (old, new), reasons in TRANSITIONS.items():
        for reason in reasons:
            check_transition(old, new, reason)
    with pytest.raises(ValueError, match="cannot move from 'finished' to 'failed'"):
        check_transition("finished", "failed", "exception")
    assert display_state("unstarted", blocked=True, waiting_reason="fault") == "blocked"
    assert display_state("unstarted", waiting_reason="engine lost") == "requeued"
    assert display_state("failed", blocked=True) == "failed"


def test_scheduling_does_not_scan_waiting_jobs():
    """Finishing a job costs the same however many jobs wait elsewhere in the graph."""
    import time

    def cost(waiting):
        chain = {f"c{i}": [f"c{i - 1}"] if i else [] for i in range(300)}
        others = {"gate": [], **{f"w{i}": ["gate"] for i in range(waiting)}}
        m = machine(JobGraph({**chain, **others}))
        m.tick(0)
        m.started("gate", 1, 0, 0)  # the waiting jobs stay waiting on a running gate
        t = time.perf_counter()
        for i in range(300):
            run_job(m, f"c{i}", ok())
        return time.perf_counter() - t

    cost(10)  # warm up
    small, large = min(cost(10) for _ in range(3)), min(cost(20_000) for _ in range(3))
    assert large < small * 3, (small, large)
