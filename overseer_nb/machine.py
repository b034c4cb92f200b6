"""The run state machine: events in, transitions and instructions out.

Pure and synchronous: no threads, no I/O, no clock of its own (every event
carries its time). The run loop feeds it what the executor reports
(:meth:`RunMachine.handle`) and what the user asks for
(:meth:`~overseer_nb._machine_commands.UserCommands.command`), and carries out
the instructions it returns. The job table and the moves both kinds of input are
made of live in :mod:`._machine_base`; the user commands in :mod:`._machine_commands`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, get_args

from ._machine_commands import UserCommands
from .errors import RunError
from .events import ClusterLost, Ended, EngineLost, EnginesChanged, ExecutorEvent, Started
from .options import backoff_delay
from .records import Attempt, ErrorInfo, Outcome
from .states import (
    ATTEMPT_ABORTED,
    ATTEMPT_FAILED,
    ATTEMPT_FAULT,
    ATTEMPT_FINISHED,
    ATTEMPT_LOST,
    ATTEMPT_RETRY,
    ATTEMPT_TIMEOUT,
    FAILED,
    FINISHED,
    HOLD_CLUSTER_LOST,
    OUTCOME_ABORT,
    OUTCOME_ERROR,
    OUTCOME_FAULT,
    OUTCOME_FENCED,
    OUTCOME_INPUT_LOST,
    OUTCOME_INTERRUPTED,
    OUTCOME_KINDS,
    OUTCOME_LOST,
    OUTCOME_OK,
    OUTCOME_UNSENDABLE,
    STARTED,
    UNSTARTED,
)
from .steps import Interrupt, Step, Submit, Transition, Withdraw

__all__ = [
    "Transition",
    "Submit",
    "Interrupt",
    "Withdraw",
    "Step",
    "RunMachine",
]


class RunMachine(UserCommands):
    """The state of one run of ``graph``: executor events and user commands in, a :class:`Step` out.

    ``job_options`` maps job types to their own :class:`RunOptions` (a job
    type's handler overrides); others use ``options``.
    """

    def handle(self, event: ExecutorEvent, now: float) -> Step:
        """Apply the executor's ``event`` (:mod:`overseer_nb.events`), applied at time ``now``.

        The same as :meth:`started` (at the event's own time: when the engine
        took it), :meth:`ended`, :meth:`engine_lost` or :meth:`cluster_lost` (at
        ``now``). ``EnginesChanged`` is the run's to act on (it pauses and
        releases ``states.HOLD_NO_ENGINES``), not the machine's: it, like anything
        that is no executor event, raises :class:`~overseer_nb.errors.RunError`.
        """
        apply = _ON_EVENT.get(type(event))
        if apply is None:
            names = ", ".join(t.__name__ for t in _ON_EVENT)
            why = " (the run pauses or releases 'no engines' for it)" if isinstance(event, EnginesChanged) else ""
            raise RunError(f"the run state machine handles {names}, not {type(event).__name__}{why}")
        return apply(self, event, now)

    def tick(self, now: float) -> Step:
        """Time passed: end backoffs, fire timeouts, send what is ready."""
        step = Step()
        while self._timers and self._timers[0][0] <= now:
            _, job, attempt = heapq.heappop(self._timers)
            j = self._jobs[job]
            if j.attempt == attempt and j.status == UNSTARTED and j.pending == 0:
                self._ready.add(job)
        while self._deadlines and self._deadlines[0][0] <= now:
            _, job, attempt = heapq.heappop(self._deadlines)
            j = self._jobs[job]
            if j.attempt == attempt and j.status == STARTED:
                self._time_out(step, job, now)
        self._schedule(step, now)
        return step

    def started(self, job: str, attempt: int, engine: Any, at: float, task: str | None = None) -> Step:
        """An engine took attempt ``attempt`` of ``job`` (``task``: the cluster's id of it)."""
        step = Step()
        j = self._jobs[job]
        if j.attempt != attempt or j.status != UNSTARTED or not j.submitted:
            return step  # late news of an attempt already ended or superseded
        if self._waits_on_parents(job):  # sent ahead: it shows started once its parents finished
            if j.early is None:
                j.early = ("started", engine, at, task)
            return step
        self.records[job].attempts[-1].task = task
        self._start(step, job, engine, at)
        self._schedule(step, at)
        return step

    def adopt(self, job: str, attempt: int, engine: Any, at: float) -> Step:
        """After a restart: attempt ``attempt`` of ``job`` still runs (or ran) on the cluster; take it back.

        The job (restored unstarted, its attempt lost with the old kernel, or
        one the journal never heard of: sent ahead, see :meth:`skip_past`) is
        started again under that attempt, so its result, when it comes, counts.
        """
        step = Step()
        j, rec = self._jobs[job], self.records[job]
        if j.status != UNSTARTED or j.attempt != attempt or j.submitted:
            return step
        if not rec.attempts or rec.attempts[-1].number != attempt:
            rec.attempts.append(Attempt(attempt))
        last = rec.attempts[-1]
        last.outcome, last.error, last.end = None, None, None
        j.submitted = True  # not shared: nothing is sent ahead of what an earlier kernel sent
        self._inflight.add(job)
        self._ready.discard(job)
        self._start(step, job, engine, at, reason="adopted", started=last.start)
        return step

    def ended(self, job: str, attempt: int, outcome: Outcome, at: float) -> Step:
        """Attempt ``attempt`` of ``job`` ended with ``outcome``.

        Raises :class:`~overseer_nb.errors.RunError` for a kind not in ``states.OUTCOME_KINDS``.
        """
        step = Step()
        j = self._jobs[job]
        if j.attempt != attempt or not j.submitted:
            return step  # fenced: a result of an attempt that no longer counts
        on_outcome = _ON_OUTCOME.get(outcome.kind)
        if on_outcome is None:
            raise RunError(
                f"attempt {attempt} of {job!r} ended with the unknown outcome kind {outcome.kind!r}; "
                f"the kinds are {', '.join(map(repr, OUTCOME_KINDS))}"
            )
        if self._waits_on_parents(job) and outcome.kind != OUTCOME_UNSENDABLE:
            j.early = ("ended", outcome)  # sent ahead: applied once its parents finished (or withdrawn)
            return step
        self._apply_end(step, job, outcome, at)
        self._schedule(step, at)
        return step

    def _apply_end(self, step: Step, job: str, outcome: Outcome, at: float) -> None:
        if self._jobs[job].status == UNSTARTED and outcome.kind not in (OUTCOME_UNSENDABLE, OUTCOME_FENCED):
            self._start(step, job, outcome.engine, outcome.started or at)  # the reply overtook the news
        _ON_OUTCOME[outcome.kind](self, step, job, outcome, at)

    def engine_lost(self, engine: Any, at: float, message: str = "", partial: dict | None = None) -> Step:
        """``engine`` died: every attempt running on it goes back to unstarted.

        ``partial`` maps (job, attempt) to the (stdout, stderr) it printed before.
        An attempt named there that was never seen starting (the engine died
        before its first message) was on ``engine`` too: it counts as a loss, as
        any lost attempt does, whatever order the news came in.
        """
        step = Step()
        partial = partial or {}
        for job in sorted(self._inflight, key=self.topo.rank):
            j = self._jobs[job]
            named = (job, j.attempt) in partial
            if named and self._waits_on_parents(job):  # sent ahead, never shown started: send it again
                self._forget_unsent(job)
                continue
            if (j.status == STARTED and j.engine == engine) or (named and j.status == UNSTARTED and j.submitted):
                out, err = partial.get((job, j.attempt), ("", ""))
                if j.status == UNSTARTED:
                    self._start(step, job, engine, at)
                lost = Outcome(OUTCOME_LOST, engine=engine, message=message, stdout=out, stderr=err)
                self._on_lost(step, job, lost, at)
        self._schedule(step, at)
        return step

    def cluster_lost(self, at: float, message: str) -> Step:
        """The whole cluster stopped answering: pause, and put running attempts back.

        Running attempts go back to unstarted (``requeued``); queued ones are
        forgotten. Nothing is submitted until ``release(HOLD_CLUSTER_LOST)``.
        """
        step = self.pause(HOLD_CLUSTER_LOST, at)
        step.instructions.clear()  # nobody to withdraw them from
        for job in sorted(self._inflight, key=self.topo.rank):
            j = self._jobs[job]
            lost = Outcome(OUTCOME_LOST, message=message)
            self._end_attempt(job, lost, ATTEMPT_LOST, at, ErrorInfo("ClusterLost", message))
            j.waiting_reason = "engine lost"
            self._move(step, job, UNSTARTED, "engine lost", at, message)
            if j.pending == 0:
                self._ready.add(job)
        return step

    # -- outcomes ------------------------------------------------------------------
    def cached(self, job: str, attempt: int, result: Any, length: int | None, from_run: str, at: float,
               item_digests: tuple[str, ...] | None = None) -> Step:
        """Attempt ``attempt`` of ``job`` need not run: an earlier run (``from_run``) made the same result.

        The job finishes (reason ``cached``, display state ``cached``) without an
        attempt; ``result`` is the earlier one and feeds its children.
        """
        step = Step()
        j, rec = self._jobs[job], self.records[job]
        if j.attempt != attempt or not j.submitted or j.status != UNSTARTED:
            return step
        self._inflight.discard(job)
        j.submitted = False
        rec.attempts.pop()
        rec.result_data, rec.length, rec.cached_from, rec.item_digests = result, length, from_run, item_digests
        j.cached = True
        self._move(step, job, FINISHED, "cached", at, f"cached from run {from_run}")
        self._release_children(step, job, Outcome(OUTCOME_OK, result=result, length=length), at)
        self._schedule(step, at)
        return step

    def _on_ok(self, step: Step, job: str, outcome: Outcome, at: float) -> None:
        self._end_attempt(job, outcome, ATTEMPT_FINISHED, at)
        rec = self.records[job]
        rec.result_data, rec.length, rec.item_digests = outcome.result, outcome.length, outcome.item_digests
        self._move(step, job, FINISHED, "returned", at)
        self._release_children(step, job, outcome, at)

    def _release_children(self, step: Step, job: str, outcome: Outcome, at: float) -> None:
        """``job`` finished: its children have one parent fewer to wait for; types mapping over it map."""
        for child in self.topo.children(job):
            c = self._jobs[child]
            c.pending -= 1
            if c.after:
                self._parent_finished(step, job, child, at)
            if c.pending == 0 and c.status == UNSTARTED and not c.submitted and not self.topo.is_gate(child):
                self._ready.add(child)
        for mapped in self.graph.children(job) if job in self.graph else ():
            if self.graph.each_of(mapped) == job and mapped in self.topo.items:
                self._map(step, mapped, job, outcome, at)

    def _map(self, step: Step, mapped: str, parent: str, outcome: Outcome, at: float) -> None:
        """``parent`` finished: one job of ``mapped`` per item of its result, or ``mapped`` fails."""
        if outcome.length is None:
            what = outcome.type_name or "a value that is no list"
            msg = (f"{mapped!r} maps over {parent!r}, whose result is {what}, not a list, tuple or range; "
                   f"make {parent!r} return a list (one item per job of {mapped!r})")
            self._move(step, mapped, FAILED, "not a list", at, msg)
            self._refresh_blocked(step, [mapped])
            return
        self._expand(step, mapped, outcome.length, at)

    def _on_fault(self, step: Step, job: str, outcome: Outcome, at: float) -> None:
        j, opts = self._jobs[job], self.options_for(job)
        j.faults += 1
        err = outcome.error or ErrorInfo("Fault", outcome.message)
        self._end_attempt(job, outcome, ATTEMPT_FAULT, at, err)
        if j.faults >= opts.max_faults:
            msg = f"faulted {j.faults} times (max_faults={opts.max_faults}); last fault: {outcome.message}"
            self._fail(step, job, "faulted too often", at, ErrorInfo("FaultLimit", msg), msg)
            return
        delay = backoff_delay(j.faults, opts.fault_backoff, opts.fault_backoff_max, self.rng)
        self._requeue(step, job, "fault", at, at + delay, f"fault {j.faults}: {outcome.message}")

    def _on_abort(self, step: Step, job: str, outcome: Outcome, at: float) -> None:
        # a silent abort keeps its message but no traceback
        err = ErrorInfo("Abort", outcome.message) if outcome.silent else outcome.error or ErrorInfo("Abort", outcome.message)
        self._end_attempt(job, outcome, ATTEMPT_ABORTED, at, err)
        self._abort_tree(step, [job], "abort", at, outcome.message)

    def _on_error(self, step: Step, job: str, outcome: Outcome, at: float) -> None:
        """An exception (or an interrupt): retry automatically while retries are left, else fail."""
        if self._retry_automatically(step, job, outcome, ATTEMPT_RETRY, at, None, f"{outcome.error}"):
            return
        self._end_attempt(job, outcome, ATTEMPT_FAILED, at)
        self._fail(step, job, "exception", at, outcome.error)

    def _on_lost(self, step: Step, job: str, outcome: Outcome, at: float) -> None:
        j, opts = self._jobs[job], self.options_for(job)
        j.losses += 1
        self._end_attempt(job, outcome, ATTEMPT_LOST, at, ErrorInfo("EngineLost", outcome.message))
        if j.losses >= opts.max_engine_losses:
            msg = f"its engine was lost {j.losses} times (max_engine_losses={opts.max_engine_losses})"
            self._fail(step, job, "engine lost too often", at, ErrorInfo("EngineLost", msg), msg)
            return
        self._requeue(step, job, "engine lost", at, at, outcome.message or "its engine was lost")

    def _on_unsendable(self, step: Step, job: str, outcome: Outcome, at: float) -> None:
        self._end_attempt(job, outcome, ATTEMPT_FAILED, at)
        self._fail(step, job, "not sendable", at, outcome.error)

    def _time_out(self, step: Step, job: str, at: float) -> None:
        j, opts = self._jobs[job], self.options_for(job)
        step.instructions.append(Interrupt(job, j.attempt, j.engine, opts.kill_grace))
        err = ErrorInfo("TimeoutError", f"job {job!r} ran longer than its timeout of {opts.timeout:g} s")
        timed_out = Outcome(OUTCOME_ERROR, error=err)
        if self._retry_automatically(step, job, timed_out, ATTEMPT_TIMEOUT, at, err, "a timeout"):
            return
        self._end_attempt(job, timed_out, ATTEMPT_TIMEOUT, at, err)
        self._fail(step, job, "timeout", at, err)

    def _retry_automatically(
        self, step: Step, job: str, outcome: Outcome, label: str, at: float, error: ErrorInfo | None, after: str
    ) -> bool:
        """End the attempt as ``label`` and requeue ``job`` if it has automatic retries left.

        False (and nothing changed) when its ``retries`` are used up.
        """
        j, opts = self._jobs[job], self.options_for(job)
        if j.auto_retries >= opts.retries:
            return False
        j.auto_retries += 1
        self._end_attempt(job, outcome, label, at, error)
        note = f"automatic retry {j.auto_retries} of {opts.retries} after {after}"
        self._requeue(step, job, "automatic retry", at, at + opts.retry_delay, note)
        return True

    def _start(
        self, step: Step, job: str, engine: Any, at: float, *, reason: str = "engine took it", started: float | None = None
    ) -> None:
        j = self._jobs[job]
        j.engine = engine
        attempt = self.records[job].attempts[-1]
        attempt.engine, attempt.start = engine, started if started is not None else at
        # shown started no earlier than its parents were shown finished: one sent ahead may have been
        # taken by an engine (at ``at``) before this kernel heard its parent end
        shown = max([at, *(self._jobs[p].done_at for p in self.topo.parents(job))])
        self._move(step, job, STARTED, reason, shown)
        timeout = self.options_for(job).timeout
        if timeout is not None:
            heapq.heappush(self._deadlines, (at + timeout, job, j.attempt))


# What each outcome kind does to the job whose attempt ended with it.
_ON_OUTCOME: dict[str, Callable[[RunMachine, Step, str, Outcome, float], None]] = {
    OUTCOME_OK: RunMachine._on_ok,
    OUTCOME_FAULT: RunMachine._on_fault,
    OUTCOME_ABORT: RunMachine._on_abort,
    OUTCOME_ERROR: RunMachine._on_error,
    OUTCOME_INTERRUPTED: RunMachine._on_error,  # an interrupted attempt that still counts: like an exception
    OUTCOME_LOST: RunMachine._on_lost,
    OUTCOME_UNSENDABLE: RunMachine._on_unsendable,
    OUTCOME_INPUT_LOST: RunMachine._on_input_lost,
    OUTCOME_FENCED: RunMachine._on_fenced,
}
assert set(_ON_OUTCOME) == set(OUTCOME_KINDS), "every outcome kind needs an entry in _ON_OUTCOME"

# Each executor event, as the call it stands for; EnginesChanged is the run's (see handle).
_ON_EVENT: dict[type, Callable[[RunMachine, Any, float], Step]] = {
    Started: lambda m, e, now: m.started(e.job, e.attempt, e.engine, e.at, e.task),
    Ended: lambda m, e, now: m.ended(e.job, e.attempt, e.outcome, now),
    EngineLost: lambda m, e, now: m.engine_lost(e.engine, now, e.message, e.partial),
    ClusterLost: lambda m, e, now: m.cluster_lost(now, e.message),
}
_NOT_THE_MACHINES = {EnginesChanged}
assert set(_ON_EVENT) | _NOT_THE_MACHINES == set(get_args(ExecutorEvent)), "every executor event needs an entry"
