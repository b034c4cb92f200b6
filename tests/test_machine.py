"""The pure state machine: feed events, compare transitions and instructions. No cluster."""

import random
from typing import get_args

import pytest

from overseer_nb import JobGraph, _machine_commands
from overseer_nb import machine as machine_module
from overseer_nb.errors import JobRunningError, RunError, TransitionError
from overseer_nb.events import (
    Abort,
    Cancel,
    ClusterLost,
    Command,
    Ended,
    EngineLost,
    EnginesChanged,
    ExecutorEvent,
    Rerun,
    Resume,
    Retry,
    Started,
)
from overseer_nb.machine import Interrupt, RunMachine, Step, Submit, Withdraw
from overseer_nb.options import RunOptions, backoff_delay
from overseer_nb.records import Attempt, ErrorInfo, Outcome
from overseer_nb.states import (
    ATTEMPT_OUTCOMES,
    BAD_STATUSES,
    HOLD_CLUSTER_LOST,
    HOLD_JOURNAL,
    HOLD_NO_ENGINES,
    HOLD_RESUME,
    HOLDS,
    OUTCOME_FENCED,
    OUTCOME_KINDS,
    TRANSITIONS,
    check_transition,
    display_state,
)

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


def test_a_lost_outcome_of_an_attempt_never_seen_started_counts_as_a_loss():
    m = machine()
    m.tick(0)
    for n in (1, 2):
        step = m.ended("start", n, Outcome("lost", engine=3, message="engine 3 was lost"), 1.0)
        assert ("start", "started", "unstarted", "engine lost") in moves(step)
        assert submits(step) == [("start", n + 1)] and m.display_state("start") == "requeued"
    step = m.ended("start", 3, Outcome("lost", engine=3), 2.0)
    assert ("start", "started", "failed", "engine lost too often") in moves(step)
    assert [a.outcome for a in m.records["start"].attempts] == ["lost", "lost", "lost"]
    assert m.records["start"].attempts[0].engine == 3
    assert "its engine was lost 3 times" in m.records["start"].message


def test_engine_lost_naming_an_attempt_never_seen_started_counts_it_as_lost():
    m = machine()
    m.tick(0)
    step = m.engine_lost(5, 2.0, "engine 5 was lost", {("start", 1): ("partial", "stack")})
    assert moves(step) == [
        ("start", "unstarted", "started", "engine took it"),
        ("start", "started", "unstarted", "engine lost"),
    ]
    first = m.records["start"].attempts[0]
    assert (first.outcome, first.engine, first.stdout, first.stderr) == ("lost", 5, "partial", "stack")
    assert submits(step) == [("start", 2)]
    assert not m.engine_lost(6, 3.0, "", {("start", 1): ("", "")}).transitions  # an old attempt: fenced


def test_a_withdrawn_attempt_number_is_never_used_again():
    m = machine()
    m.tick(0)
    step = m.pause(HOLD_NO_ENGINES, 1.0)
    assert step.instructions == [Withdraw("start", 1)]
    assert m.records["start"].attempts == []
    assert submits(m.release(HOLD_NO_ENGINES, 2.0)) == [("start", 2)]  # attempt 1 may still run somewhere
    assert not m.started("start", 1, 0, 3.0)  # and its news is fenced
    assert not m.ended("start", 1, ok(b"stale"), 3.0)
    run_job(m, "start", ok(b"fresh"))
    assert [a.number for a in m.records["start"].attempts] == [2]
    assert m.records["start"].result_data == b"fresh"


def test_late_result_of_an_old_attempt_is_ignored():
    m = machine()
    m.tick(0)
    m.started("start", 1, 0, 1.0)
    m.engine_lost(0, 2.0)
    # attempt 2 was submitted; attempt 1's result arrives late
    assert not m.ended("start", 1, ok(b"stale"), 3.0)
    assert m.status("start") == "unstarted"
    run_job(m, "start", ok(b"fresh"))
    assert m.records["start"].result_data == b"fresh"


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
    assert m.records["finish"].result_data is None


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


# -- vocabularies ------------------------------------------------------------------
def test_stored_vocabularies_keep_their_values():
    # the journal stores these words: renaming one would orphan every journal written before
    assert HOLDS == ("held", "no engines", "cluster lost", "resume")
    assert (HOLD_JOURNAL, HOLD_NO_ENGINES, HOLD_CLUSTER_LOST, HOLD_RESUME) == HOLDS
    assert OUTCOME_KINDS == ("ok", "fault", "abort", "error", "interrupted", "lost", "unsendable", "input_lost",
                             "fenced")
    assert ATTEMPT_OUTCOMES == ("finished", "failed", "fault", "aborted", "timeout", "lost", "retry", "cancelled")
    assert BAD_STATUSES == ("failed", "aborted")


def test_check_transition_error_names_the_job_and_the_move():
    with pytest.raises(TransitionError, match="job 'b' cannot move from 'finished' to 'started'") as info:
        check_transition("finished", "started", "engine took it", job="b")
    assert (info.value.job, info.value.old, info.value.new, info.value.reason) == (
        "b", "finished", "started", "engine took it"
    )
    assert "['unstarted']" in str(info.value)  # where a finished job may go
    with pytest.raises(TransitionError, match="job 'b' moves from 'started' to 'failed' only for .*not 'cancel'"):
        check_transition("started", "failed", "cancel", job="b")


def test_the_machine_names_the_job_of_a_forbidden_move():
    m = machine()
    m.tick(0)
    run_job(m, "start", ok())
    with pytest.raises(TransitionError, match="job 'start' cannot move from 'finished' to 'started'") as info:
        m._move(Step(), "start", "started", "engine took it", 2.0)
    assert info.value.job == "start"


# -- holds -------------------------------------------------------------------------
def test_lifting_one_hold_leaves_the_others():
    m = machine()
    m.hold(HOLD_JOURNAL)
    step = m.pause(HOLD_NO_ENGINES, 0)
    assert m.holds == {HOLD_JOURNAL, HOLD_NO_ENGINES} and m.held
    assert submits(m.release(HOLD_NO_ENGINES, 1.0)) == []  # the journal hold is still there
    assert m.holds == {HOLD_JOURNAL} and m.held
    assert submits(m.tick(2.0)) == []
    m.hold(HOLD_RESUME)
    m.unhold(HOLD_RESUME)
    assert m.holds == {HOLD_JOURNAL}
    m.unhold(HOLD_JOURNAL)
    m.unhold(HOLD_JOURNAL)  # lifting a hold that is not set is fine
    assert not m.held and m.holds == frozenset()
    assert submits(m.tick(3.0)) == [("start", 1)]
    assert not step


def test_holds_are_read_only_views():
    m = machine()
    m.hold(HOLD_JOURNAL)
    with pytest.raises(AttributeError):
        m.held = False  # no setter: clearing every hold at once hid which one was meant
    with pytest.raises(AttributeError):
        m.holds.clear()
    assert m.holds == {HOLD_JOURNAL}


def test_unknown_hold_names_are_refused_with_the_valid_ones():
    m = machine()
    for call in (m.hold, m.unhold, lambda r: m.pause(r, 0), lambda r: m.release(r, 0)):
        with pytest.raises(RunError, match="unknown hold 'paused'; .*'held', 'no engines', 'cluster lost', 'resume'"):
            call("paused")
    assert not m.held
    assert submits(m.tick(0)) == [("start", 1)]


def test_cluster_lost_holds_until_its_own_release():
    m = machine()
    m.tick(0)
    m.started("start", 1, 0, 1.0)
    m.hold(HOLD_JOURNAL)
    step = m.cluster_lost(2.0, "controller gone")
    assert moves(step) == [("start", "started", "unstarted", "engine lost")]
    assert m.holds == {HOLD_JOURNAL, HOLD_CLUSTER_LOST}
    assert submits(m.release(HOLD_CLUSTER_LOST, 3.0)) == []
    assert submits(m.release(HOLD_JOURNAL, 4.0)) == [("start", 2)]


# -- dispatch tables -----------------------------------------------------------------
def test_every_outcome_kind_has_a_handler():
    assert set(machine_module._ON_OUTCOME) == set(OUTCOME_KINDS)
    for kind in OUTCOME_KINDS:
        m = machine()
        m.tick(0)
        step = m.ended("start", 1, Outcome(kind, error=ErrorInfo("E", kind)), 1.0)
        if kind == OUTCOME_FENCED:  # it never ran: no move, no attempt kept, sent again under a new number
            assert not step.transitions and submits(step) == [("start", 2)]
            assert [a.number for a in m.records["start"].attempts] == [2]
            continue
        assert step.transitions, kind
        assert m.records["start"].attempts[0].outcome in ATTEMPT_OUTCOMES, kind


def test_an_unknown_outcome_kind_is_refused_and_changes_nothing():
    m = machine()
    m.tick(0)
    with pytest.raises(RunError, match="unknown outcome kind 'okay'; the kinds are 'ok', 'fault'"):
        m.ended("start", 1, Outcome("okay"), 1.0)
    assert m.status("start") == "unstarted" and m.records["start"].attempts[0].outcome is None
    run_job(m, "start", ok())
    assert m.status("start") == "finished"


def test_every_command_and_executor_event_has_an_entry():
    assert set(_machine_commands._ON_COMMAND) == set(get_args(Command))
    assert set(machine_module._ON_EVENT) == set(get_args(ExecutorEvent)) - {EnginesChanged}


def failed_result1():
    """A seed run where result1 failed, result2 finished and finish is blocked."""
    m = machine()
    m.tick(0)
    run_job(m, "start", ok())
    run_job(m, "result1", Outcome("error", error=ErrorInfo("E", "x")))
    run_job(m, "result2", ok())
    return m


def queued():
    m = machine()
    m.tick(0)
    return m


def done():
    m = machine()
    m.tick(0)
    for job in ("start", "result1", "result2", "finish"):
        run_job(m, job, ok())
    return m


@pytest.mark.parametrize(
    "make, cmd, direct",
    [
        (failed_result1, Retry("result1"), lambda m: m.retry("result1", 5.0)),
        (failed_result1, Retry(), lambda m: m.retry(None, 5.0)),
        (failed_result1, Retry("result1", dry_run=True), lambda m: m.retry("result1", 5.0, dry_run=True)),
        (done, Rerun("result1"), lambda m: m.rerun("result1", 5.0)),
        (done, Rerun("start", dry_run=True), lambda m: m.rerun("start", 5.0, dry_run=True)),
        (failed_result1, Cancel(), lambda m: m.cancel(5.0)),
        (queued, Abort("start"), lambda m: m.abort("start", 5.0)),
        (done, Resume(frozenset({"result2", "finish"})), lambda m: m.resume({"result2", "finish"}, 5.0)),
    ],
)
def test_a_command_gives_the_steps_of_its_method(make, cmd, direct):
    by_command, by_method = make(), make()
    step = by_command.command(cmd, 5.0)
    assert step == direct(by_method)
    assert {j: (by_command.status(j), by_command.display_state(j)) for j in SEED} == {
        j: (by_method.status(j), by_method.display_state(j)) for j in SEED
    }
    assert by_command.records == by_method.records


def test_a_command_raises_what_its_method_raises():
    m = failed_result1()
    with pytest.raises(RunError, match="blocked by 'result1'"):
        m.command(Retry("finish"), 5.0)
    with pytest.raises(RunError, match="did you mean 'start'"):
        m.command(Abort("strat"), 5.0)
    with pytest.raises(RunError, match="takes the commands Retry, Rerun, Cancel, Abort, Resume, not Started"):
        m.command(Started("start", 1, 0, 5.0), 5.0)


def test_handle_gives_the_steps_of_the_event_methods():
    a, b = machine(timeout=50.0), machine(timeout=50.0)
    a.tick(0)
    b.tick(0)
    # Started keeps its own time (when the engine took it), not the time it is applied
    assert a.handle(Started("start", 1, 3, 0.5), 9.0) == b.started("start", 1, 3, 0.5)
    assert a.next_wakeup() == b.next_wakeup() == 50.5
    outcome = Outcome("ok", result=b"s", engine=3)
    assert a.handle(Ended("start", 1, outcome, 0.9), 1.0) == b.ended("start", 1, outcome, 1.0)
    a.started("result1", 1, 4, 1.0)
    b.started("result1", 1, 4, 1.0)
    lost = EngineLost(4, 1.5, "engine 4 died", {("result1", 1): ("out", "")})
    assert a.handle(lost, 2.0) == b.engine_lost(4, 2.0, "engine 4 died", {("result1", 1): ("out", "")})
    assert a.handle(ClusterLost(2.5, "gone"), 3.0) == b.cluster_lost(3.0, "gone")
    assert a.records == b.records and a.holds == b.holds == {HOLD_CLUSTER_LOST}


def test_handle_started_is_fenced_like_started():
    m = machine()
    m.tick(0)
    step = m.handle(Started("start", 1, 2, 1.0), 1.0)
    assert moves(step) == [("start", "unstarted", "started", "engine took it")]
    assert m.records["start"].attempts[0].engine == 2
    assert not m.handle(Started("start", 1, 2, 1.1), 1.1)  # the same news again
    assert not m.handle(Started("result1", 1, 2, 1.1), 1.1)  # never submitted


def test_engine_counts_are_not_the_machines_business():
    m = machine()
    with pytest.raises(RunError, match="handles Started, Ended, EngineLost, ClusterLost, not EnginesChanged"):
        m.handle(EnginesChanged(0, 1.0), 1.0)
    with pytest.raises(RunError, match="not Retry"):
        m.handle(Retry(), 1.0)
    assert not m.held


# -- one helper each for readiness and automatic retries -----------------------------
def test_a_timeout_is_retried_automatically_like_an_exception():
    m = machine(timeout=10.0, kill_grace=2.0, retries=1, retry_delay=3.0)
    m.tick(0)
    m.started("start", 1, 4, 1.0)
    step = m.tick(11.0)
    assert moves(step) == [("start", "started", "unstarted", "automatic retry")]
    assert Interrupt("start", 1, 4, 2.0) in step.instructions
    assert m.records["start"].message == "automatic retry 1 of 1 after a timeout"
    assert m.next_wakeup() == 14.0 and m.display_state("start") == "retrying"
    assert submits(m.tick(14.0)) == [("start", 2)]
    m.started("start", 2, 4, 14.0)
    step = m.tick(24.0)
    assert ("start", "started", "failed", "timeout") in moves(step)
    assert [a.outcome for a in m.records["start"].attempts] == ["timeout", "timeout"]
    assert m.records["start"].attempts[0].error.ename == "TimeoutError"


def test_finish_restore_recomputes_readiness_and_blocking():
    m = machine()
    m.restore("start", "finished", [Attempt(1, outcome="finished")], b"s")
    m.restore("result1", "failed", [Attempt(1, outcome="failed")], None, "E: x")
    m.restore("result2", "started", [Attempt(1), Attempt(2)], None)  # its kernel died mid-job
    step = m.finish_restore()
    assert step.display == {"start": "finished", "result1": "failed", "finish": "blocked"}
    assert m.status("result2") == "unstarted" and m.display_state("result2") == "unstarted"
    assert submits(m.tick(10.0)) == [("result2", 3)]
    step = m.retry(None, 11.0)
    assert step.selected == {"result1", "finish"}
    assert submits(step) == [("result1", 2)]  # finish waits for both parents again


class _Stored:
    """A stored result as the machine sees it (the store's ResultRef has the same fields)."""

    def __init__(self, engine):
        self.path, self.nbytes, self.type_name, self.summary, self.engine = "/s/start.1.ovnb", 10**9, "x", "x", engine

    def load(self):
        return "value"

    def exists(self):
        return False

    def to_json(self):
        return {"path": self.path, "nbytes": self.nbytes}


def test_a_child_that_cannot_read_its_input_waits_while_the_parent_runs_again():
    m = machine()
    m.tick(0)
    m.started("start", 1, 0, 1)
    m.ended("start", 1, ok(_Stored(engine=0)), 2)
    m.started("result1", 1, 1, 3)
    m.started("result2", 1, 0, 3)
    lost = Outcome("input_lost", message="the result of 'start' could not be read", lost_inputs=("start",))
    step = m.ended("result1", 1, lost, 4)
    assert ("start", "finished", "unstarted", "result lost") in moves(step)
    assert ("result1", "started", "unstarted", "input lost") in moves(step)
    assert submits(step) == [("start", 2)]  # the parent again; the child waits for it
    assert m.records["result1"].attempts[-1].outcome == "lost"
    assert m.records["result1"].display_state == "requeued" and m.records["start"].result_data is None
    # the sibling that was out with the old input reports the same: it only goes back
    step = m.ended("result2", 1, lost, 5)
    assert moves(step) == [("result2", "started", "unstarted", "input lost")] and submits(step) == []
    m.started("start", 2, 1, 6)
    step = m.ended("start", 2, ok(b"new"), 7)
    assert sorted(submits(step)) == [("result1", 2), ("result2", 2)]
    assert dict(step.instructions[0].inputs) == {"start": b"new"}


def test_results_lost_with_their_engine_run_again_and_stop_the_children_that_wait_for_them():
    m = machine()
    m.tick(0)
    m.started("start", 1, 0, 1)
    m.ended("start", 1, ok(_Stored(engine=0)), 2)
    m.started("result1", 1, 1, 3)  # on another engine, waiting for the file
    step = m.results_lost(["start"], 4, "engine 0 died before writing it to the result store")
    assert ("start", "finished", "unstarted", "result lost") in moves(step)
    assert ("result1", "started", "unstarted", "input lost") in moves(step)
    assert Interrupt("result1", 1, 1, 5.0) in step.instructions
    assert ("result2", 1) not in submits(step) and ("start", 2) in submits(step)
    assert m.records["result1"].attempts[-1].error.ename == "InputLost"
    assert m.results_lost(["finish"], 5, "not finished").transitions == []  # only finished jobs lose a result


def test_a_job_that_never_gets_its_input_fails_after_max_engine_losses():
    m = machine(max_engine_losses=2)
    m.tick(0)
    lost = Outcome("input_lost", message="the result of 'start' could not be read", lost_inputs=("start",))
    for attempt in (1, 2):
        m.started("start", attempt, 0, attempt * 10)
        m.ended("start", attempt, ok(_Stored(engine=0)), attempt * 10 + 1)
        m.started("result1", attempt, 1, attempt * 10 + 2)
        step = m.ended("result1", attempt, lost, attempt * 10 + 3)
    assert ("result1", "started", "failed", "input lost too often") in moves(step)
    assert "Do all engines share the result store" in m.records["result1"].message
    assert m.records["start"].status == "finished"  # not run again for a job that gave up


def test_a_window_bounds_the_attempts_out_at_once():
    m = machine(JobGraph({f"j{i}": [] for i in range(10)}))
    m.max_out = 3
    assert len(submits(m.tick(0))) == 3  # the rest wait, ready
    m.started("j0", 1, 0, 1)
    assert submits(m.started("j1", 1, 0, 1)) == []  # started is still out
    assert submits(m.ended("j0", 1, ok(), 2)) == [("j3", 1)]
    m.max_out = None
    assert len(submits(m.ended("j1", 1, ok(), 3))) == 6
