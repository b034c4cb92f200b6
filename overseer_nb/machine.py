"""The run state machine: events in, transitions and instructions out.

Pure and synchronous: no threads, no I/O, no clock of its own (every event
carries its time). The run loop feeds it what the executor reports and what the
user asks for, and carries out the instructions it returns.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._machine_commands import UserCommands
from .graph import JobGraph
from .options import RunOptions, backoff_delay
from .records import Attempt, ErrorInfo, JobRecord, Outcome
from .states import (
    ABORTED,
    FAILED,
    FINISHED,
    STARTED,
    UNSTARTED,
    check_transition,
    display_state,
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

_BAD = (FAILED, ABORTED)


@dataclass
class _Job:
    status: str = UNSTARTED
    attempt: int = 0
    submitted: bool = False  # the current attempt was sent and has not ended
    waiting_reason: str | None = None
    faults: int = 0
    losses: int = 0
    auto_retries: int = 0
    not_before: float = 0.0
    engine: Any = None
    pending: int = 0  # parents not finished
    blocked: bool = False  # some ancestor failed or aborted


class RunMachine(UserCommands):
    """The state of one run of ``graph``.

    ``job_options`` maps job types to their own :class:`RunOptions` (a job
    type's handler overrides); others use ``options``.
    """

    def __init__(
        self,
        graph: JobGraph,
        options: RunOptions | None = None,
        job_options: dict[str, RunOptions] | None = None,
        rng: random.Random | None = None,
    ):
        self.graph = graph
        self.options = options or RunOptions()
        self.job_options = dict(job_options or {})
        self.rng = rng or random.Random()
        self.cancelled = False
        self.holds: set[str] = set()  # why nothing may be submitted now (journal, no engines, ...)
        self.records = {job: JobRecord(job) for job in graph}
        self._jobs = {job: _Job(pending=len(graph.parents(job))) for job in graph}
        self._rank = {job: i for i, job in enumerate(graph.topological_order())}
        self._ready: set[str] = {job for job in graph if not graph.parents(job)}
        self._timers: list[tuple[float, str, int]] = []  # (when, job, attempt): backoffs
        self._deadlines: list[tuple[float, str, int]] = []  # timeouts of running attempts
        self._inflight: set[str] = set()  # submitted, not ended

    # -- reading ---------------------------------------------------------
    def status(self, job: str) -> str:
        """Stored status of ``job``."""
        return self._jobs[job].status

    def display_state(self, job: str) -> str:
        """Derived display state of ``job``."""
        j = self._jobs[job]
        return display_state(j.status, blocked=j.blocked, waiting_reason=j.waiting_reason)

    @property
    def held(self) -> bool:
        """True while some hold keeps the run from submitting."""
        return bool(self.holds)

    @held.setter
    def held(self, value: bool) -> None:
        if value:
            self.holds.add("held")
        else:
            self.holds.clear()

    def is_idle(self) -> bool:
        """True when nothing runs, nothing waits to be sent and no backoff is pending."""
        return not (self._inflight or self._runnable() or self._timers)

    def next_wakeup(self) -> float | None:
        """The earliest time a backoff ends or a timeout fires, or None."""
        times = [t[0] for t in self._timers[:1] + self._deadlines[:1]]
        return min(times) if times else None

    def options_for(self, job: str) -> RunOptions:
        return self.job_options.get(job, self.options)

    def _runnable(self) -> bool:
        return bool(self._ready) and not (self.cancelled or self.held)

    # -- events from the executor ------------------------------------------
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

    def started(self, job: str, attempt: int, engine: Any, at: float) -> Step:
        """An engine took attempt ``attempt`` of ``job``."""
        step = Step()
        j = self._jobs[job]
        if j.attempt != attempt or j.status != UNSTARTED or not j.submitted:
            return step  # late news of an attempt already ended or superseded
        self._start(step, job, engine, at)
        self._schedule(step, at)
        return step

    def ended(self, job: str, attempt: int, outcome: Outcome, at: float) -> Step:
        """Attempt ``attempt`` of ``job`` ended with ``outcome``."""
        step = Step()
        j = self._jobs[job]
        if j.attempt != attempt or not j.submitted:
            return step  # fenced: a result of an attempt that no longer counts
        if outcome.kind == "unsendable":
            self._end_attempt(job, outcome, "failed", at)
            self._fail(step, job, "not sendable", at, outcome.error)
            self._schedule(step, at)
            return step
        if j.status == UNSTARTED:  # the reply overtook the news that it started
            self._start(step, job, outcome.engine, outcome.started or at)
        handler = getattr(self, f"_on_{outcome.kind}")
        handler(step, job, outcome, at)
        self._schedule(step, at)
        return step

    def engine_lost(self, engine: Any, at: float, message: str = "", partial: dict | None = None) -> Step:
        """``engine`` died: every attempt running on it goes back to unstarted.

        ``partial`` maps (job, attempt) to the (stdout, stderr) it printed before.
        """
        step = Step()
        partial = partial or {}
        for job in sorted(self._inflight, key=self._rank.__getitem__):
            j = self._jobs[job]
            if j.status == STARTED and j.engine == engine:
                out, err = partial.get((job, j.attempt), ("", ""))
                lost = Outcome("lost", engine=engine, message=message, stdout=out, stderr=err)
                self._on_lost(step, job, lost, at)
        self._schedule(step, at)
        return step

    # -- outcomes ------------------------------------------------------------
    def _on_ok(self, step: Step, job: str, outcome: Outcome, at: float) -> None:
        self._end_attempt(job, outcome, "finished", at)
        self.records[job].result_bytes = outcome.result
        self._move(step, job, FINISHED, "returned", at)
        for child in self.graph.children(job):
            c = self._jobs[child]
            c.pending -= 1
            if c.pending == 0 and c.status == UNSTARTED and not c.submitted:
                self._ready.add(child)

    def _on_fault(self, step: Step, job: str, outcome: Outcome, at: float) -> None:
        j, opts = self._jobs[job], self.options_for(job)
        j.faults += 1
        err = outcome.error or ErrorInfo("Fault", outcome.message)
        self._end_attempt(job, outcome, "fault", at, err)
        if j.faults >= opts.max_faults:
            msg = f"faulted {j.faults} times (max_faults={opts.max_faults}); last fault: {outcome.message}"
            self._fail(step, job, "faulted too often", at, ErrorInfo("FaultLimit", msg), msg)
            return
        delay = backoff_delay(j.faults, opts.fault_backoff, opts.fault_backoff_max, self.rng)
        self._requeue(step, job, "fault", at, at + delay, f"fault {j.faults}: {outcome.message}")

    def _on_abort(self, step: Step, job: str, outcome: Outcome, at: float) -> None:
        # a silent abort keeps its message but no traceback
        err = ErrorInfo("Abort", outcome.message) if outcome.silent else outcome.error or ErrorInfo("Abort", outcome.message)
        self._end_attempt(job, outcome, "aborted", at, err)
        self._abort_tree(step, [job], "abort", at, outcome.message)

    def _on_error(self, step: Step, job: str, outcome: Outcome, at: float) -> None:
        j, opts = self._jobs[job], self.options_for(job)
        if j.auto_retries < opts.retries:
            j.auto_retries += 1
            self._end_attempt(job, outcome, "retry", at)
            note = f"automatic retry {j.auto_retries} of {opts.retries} after {outcome.error}"
            self._requeue(step, job, "automatic retry", at, at + opts.retry_delay, note)
            return
        self._end_attempt(job, outcome, "failed", at)
        self._fail(step, job, "exception", at, outcome.error)

    def _on_interrupted(self, step: Step, job: str, outcome: Outcome, at: float) -> None:
        self._on_error(step, job, outcome, at)

    def _on_lost(self, step: Step, job: str, outcome: Outcome, at: float) -> None:
        j, opts = self._jobs[job], self.options_for(job)
        j.losses += 1
        self._end_attempt(job, outcome, "lost", at, ErrorInfo("EngineLost", outcome.message))
        if j.losses >= opts.max_engine_losses:
            msg = f"its engine was lost {j.losses} times (max_engine_losses={opts.max_engine_losses})"
            self._fail(step, job, "engine lost too often", at, ErrorInfo("EngineLost", msg), msg)
            return
        self._requeue(step, job, "engine lost", at, at, outcome.message or "its engine was lost")

    def _time_out(self, step: Step, job: str, at: float) -> None:
        j, opts = self._jobs[job], self.options_for(job)
        step.instructions.append(Interrupt(job, j.attempt, j.engine, opts.kill_grace))
        err = ErrorInfo("TimeoutError", f"job {job!r} ran longer than its timeout of {opts.timeout:g} s")
        if j.auto_retries < opts.retries:
            j.auto_retries += 1
            self._end_attempt(job, Outcome("error", error=err), "timeout", at, err)
            note = f"automatic retry {j.auto_retries} of {opts.retries} after a timeout"
            self._requeue(step, job, "automatic retry", at, at + opts.retry_delay, note)
            return
        self._end_attempt(job, Outcome("error", error=err), "timeout", at, err)
        self._fail(step, job, "timeout", at, err)

    # -- helpers -------------------------------------------------------------
    def _reset(self, step: Step, selected: set[str], reason: str, at: float) -> None:
        self.cancelled = False
        order = sorted(selected, key=self._rank.__getitem__)
        for job in order:
            j = self._jobs[job]
            j.faults = j.losses = j.auto_retries = 0
            j.waiting_reason = None
            if j.status != UNSTARTED:
                self.records[job].result_bytes = None
                self._move(step, job, UNSTARTED, reason, at)
        touched = set(selected)
        for job in selected:
            touched.update(self.graph.children(job))
        for job in touched:
            j = self._jobs[job]
            j.pending = sum(self._jobs[p].status != FINISHED for p in self.graph.parents(job))
            if job not in self._inflight:
                if j.status == UNSTARTED and j.pending == 0:
                    self._ready.add(job)
                else:
                    self._ready.discard(job)
        self._refresh_blocked(step, order)
        self._schedule(step, at)

    def _requeue(self, step: Step, job: str, reason: str, at: float, not_before: float, note: str) -> None:
        j = self._jobs[job]
        j.waiting_reason = reason
        self._move(step, job, UNSTARTED, reason, at, note)
        if not_before <= at:
            self._ready.add(job)
        else:
            j.not_before = not_before
            heapq.heappush(self._timers, (not_before, job, j.attempt))

    def _fail(self, step: Step, job: str, reason: str, at: float, error: ErrorInfo | None, msg: str = "") -> None:
        self._move(step, job, FAILED, reason, at, msg or (str(error) if error else ""))
        self._refresh_blocked(step, [job])

    def _abort_tree(self, step: Step, roots: list[str], reason: str, at: float, msg: str) -> None:
        tree = set(roots)
        for root in roots:
            tree |= self.graph.descendants(root)
        for job in sorted(tree, key=self._rank.__getitem__):
            j = self._jobs[job]
            if j.status not in (UNSTARTED, STARTED):
                continue
            why = reason if job in roots else "parent aborted"
            self._stop_attempt(step, job, at)
            self._move(step, job, ABORTED, why, at, msg if job in roots else f"a parent was aborted: {msg}")
            self._ready.discard(job)
        self._refresh_blocked(step, roots)

    def _stop_attempt(self, step: Step, job: str, at: float) -> None:
        """End the current attempt of ``job`` if it is queued or running."""
        j = self._jobs[job]
        if job not in self._inflight:
            return
        if j.status == STARTED:
            step.instructions.append(Interrupt(job, j.attempt, j.engine, self.options_for(job).kill_grace))
        else:
            step.instructions.append(Withdraw(job, j.attempt))
        self._end_attempt(job, Outcome("interrupted"), "cancelled", at)

    def _start(self, step: Step, job: str, engine: Any, at: float) -> None:
        j = self._jobs[job]
        j.engine = engine
        attempt = self.records[job].attempts[-1]
        attempt.engine, attempt.start = engine, at
        self._move(step, job, STARTED, "engine took it", at)
        timeout = self.options_for(job).timeout
        if timeout is not None:
            heapq.heappush(self._deadlines, (at + timeout, job, j.attempt))

    def _end_attempt(self, job: str, outcome: Outcome, label: str, at: float, error: ErrorInfo | None = None) -> None:
        j = self._jobs[job]
        self._inflight.discard(job)
        j.submitted = False
        attempt = self.records[job].attempts[-1]
        attempt.outcome = label
        if outcome.engine is not None and attempt.engine is None:
            attempt.engine = outcome.engine
        if outcome.started is not None:  # the engine's own clock is the true start
            attempt.start = outcome.started
        attempt.end = outcome.ended if outcome.ended is not None else at
        attempt.stdout = outcome.stdout or attempt.stdout
        attempt.stderr = outcome.stderr or attempt.stderr
        attempt.error = error if error is not None else outcome.error

    def _schedule(self, step: Step, at: float) -> None:
        if self.cancelled or self.held or not self._ready:
            return
        for job in sorted(self._ready, key=self._rank.__getitem__):
            j = self._jobs[job]
            j.attempt += 1
            j.submitted = True
            self._inflight.add(job)
            self.records[job].attempts.append(Attempt(j.attempt))
            inputs = {p: self.records[p].result_bytes for p in self.graph.parents(job)}
            step.instructions.append(Submit(job, j.attempt, inputs))
        self._ready.clear()

    def _move(self, step: Step, job: str, new: str, reason: str, at: float, message: str = "") -> None:
        j = self._jobs[job]
        check_transition(j.status, new, reason)
        old, j.status = j.status, new
        if new != UNSTARTED:
            j.waiting_reason = None
        rec = self.records[job]
        rec.status = new
        rec.message = message
        step.transitions.append(Transition(job, old, new, reason, j.attempt, at, message))
        self._note_display(step, job)

    def _note_display(self, step: Step, job: str) -> None:
        state = self.display_state(job)
        rec = self.records[job]
        if rec.display_state != state or job in step.display:
            rec.display_state = state
            step.display[job] = state

    def _refresh_blocked(self, step: Step, changed: Iterable[str]) -> None:
        """Recompute ``blocked`` below ``changed`` jobs, in topological order."""
        below: set[str] = set()
        for job in changed:
            below |= self.graph.descendants(job)
        for job in sorted(below, key=self._rank.__getitem__):
            j = self._jobs[job]
            j.blocked = any(
                self._jobs[p].status in _BAD or self._jobs[p].blocked for p in self.graph.parents(job)
            )
            self._note_display(step, job)
