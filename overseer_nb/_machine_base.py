"""The run state machine's job table and the helpers both of its halves use.

:class:`MachineBase` owns what the machine knows (each job's status, attempt
and counters, the ready set, what is in flight, backoff timers and timeout
deadlines, the holds) and the moves every event or command is made of. The
user commands (:mod:`._machine_commands`) and the executor's events
(:mod:`.machine`) build on it. Pure: no threads, no I/O, no clock.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import RunError, UnknownJobError
from .graph import JobGraph
from .options import RunOptions
from .records import Attempt, ErrorInfo, JobRecord, Outcome
from .states import (
    ABORTED,
    ATTEMPT_CANCELLED,
    BAD_STATUSES,
    FAILED,
    FINISHED,
    HOLDS,
    OUTCOME_INTERRUPTED,
    STARTED,
    UNSTARTED,
    check_transition,
    display_state,
)
from .steps import Interrupt, Step, Submit, Transition, Withdraw

__all__ = ["MachineBase"]


@dataclass
class _Job:
    status: str = UNSTARTED
    attempt: int = 0
    submitted: bool = False  # the current attempt was sent and has not ended
    waiting_reason: str | None = None
    faults: int = 0
    losses: int = 0
    auto_retries: int = 0
    engine: Any = None
    pending: int = 0  # parents not finished
    blocked: bool = False  # some ancestor failed or aborted


class MachineBase:
    """The state of one run of ``graph``, and the moves that change it.

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
        self.records = {job: JobRecord(job) for job in graph}
        self._holds: set[str] = set()  # why nothing may be submitted now: states.HOLDS
        self._jobs = {job: _Job(pending=len(graph.parents(job))) for job in graph}
        self._rank = {job: i for i, job in enumerate(graph.topological_order())}
        self._ready: set[str] = {job for job in graph if not graph.parents(job)}
        self._timers: list[tuple[float, str, int]] = []  # (when, job, attempt): backoffs
        self._deadlines: list[tuple[float, str, int]] = []  # timeouts of running attempts
        self._inflight: set[str] = set()  # submitted, not ended

    # -- reading -----------------------------------------------------------------
    def status(self, job: str) -> str:
        """Stored status of ``job``."""
        return self._jobs[job].status

    def display_state(self, job: str) -> str:
        """Derived display state of ``job``."""
        j = self._jobs[job]
        return display_state(j.status, blocked=j.blocked, waiting_reason=j.waiting_reason)

    def is_idle(self) -> bool:
        """True when nothing runs, nothing waits to be sent and no backoff is pending."""
        return not (self._inflight or self._runnable() or self._timers)

    def next_wakeup(self) -> float | None:
        """The earliest time a backoff ends or a timeout fires, or None."""
        times = [t[0] for t in self._timers[:1] + self._deadlines[:1]]
        return min(times) if times else None

    def options_for(self, job: str) -> RunOptions:
        """The options of ``job``: its type's own, else the run's."""
        return self.job_options.get(job, self.options)

    # -- holds -------------------------------------------------------------------
    @property
    def holds(self) -> frozenset[str]:
        """Why the run submits nothing now (names from ``states.HOLDS``); empty when it may."""
        return frozenset(self._holds)

    @property
    def held(self) -> bool:
        """True while some hold keeps the run from submitting."""
        return bool(self._holds)

    def hold(self, reason: str) -> None:
        """Submit nothing until :meth:`unhold` of ``reason`` (one of ``states.HOLDS``).

        Raises :class:`~overseer_nb.errors.RunError` for a name not in ``HOLDS``.
        """
        self._holds.add(self._check_hold(reason))

    def unhold(self, reason: str) -> None:
        """Lift the hold ``reason``; other holds stay. Nothing is submitted until the next step."""
        self._holds.discard(self._check_hold(reason))

    @staticmethod
    def _check_hold(reason: str) -> str:
        if reason not in HOLDS:
            raise RunError(f"unknown hold {reason!r}; a run holds for one of {', '.join(map(repr, HOLDS))}")
        return reason

    def _runnable(self) -> bool:
        return bool(self._ready) and not (self.cancelled or self._holds)

    def _check_known(self, job: str) -> None:
        if job not in self.graph:
            self.graph.parents(job)  # raises UnknownJobError with a suggestion
            raise UnknownJobError(job)

    # -- moves -------------------------------------------------------------------
    def _move(self, step: Step, job: str, new: str, reason: str, at: float, message: str = "") -> None:
        j = self._jobs[job]
        check_transition(j.status, new, reason, job=job)
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

    def _reset(self, step: Step, selected: set[str], reason: str, at: float) -> None:
        """Put ``selected`` back to unstarted (retry, rerun, resume) and send what is ready."""
        self.cancelled = False
        order = sorted(selected, key=self._rank.__getitem__)
        for job in order:
            j = self._jobs[job]
            j.faults = j.losses = j.auto_retries = 0
            j.waiting_reason = None
            if j.status != UNSTARTED:
                self.records[job].result_data = None
                self._move(step, job, UNSTARTED, reason, at)
        touched = set(selected)
        for job in selected:
            touched.update(self.graph.children(job))
        self._refresh_ready(touched)
        self._refresh_blocked(step, order)
        self._schedule(step, at)

    def _refresh_ready(self, jobs: Iterable[str]) -> None:
        """Recount the unfinished parents of ``jobs``; those unstarted with none, not in flight, are ready."""
        for job in jobs:
            j = self._jobs[job]
            j.pending = sum(self._jobs[p].status != FINISHED for p in self.graph.parents(job))
            if job in self._inflight:
                continue
            if j.status == UNSTARTED and j.pending == 0:
                self._ready.add(job)
            else:
                self._ready.discard(job)

    def _refresh_blocked(self, step: Step, changed: Iterable[str]) -> None:
        """Recompute ``blocked`` below ``changed`` jobs, in topological order."""
        below: set[str] = set()
        for job in changed:
            below |= self.graph.descendants(job)
        for job in sorted(below, key=self._rank.__getitem__):
            j = self._jobs[job]
            j.blocked = any(
                self._jobs[p].status in BAD_STATUSES or self._jobs[p].blocked for p in self.graph.parents(job)
            )
            self._note_display(step, job)

    def _requeue(self, step: Step, job: str, reason: str, at: float, not_before: float, note: str) -> None:
        """Put a running ``job`` back to unstarted; it is ready at ``not_before``."""
        j = self._jobs[job]
        j.waiting_reason = reason
        self._move(step, job, UNSTARTED, reason, at, note)
        if not_before <= at:
            self._ready.add(job)
        else:
            heapq.heappush(self._timers, (not_before, job, j.attempt))

    def _fail(self, step: Step, job: str, reason: str, at: float, error: ErrorInfo | None, msg: str = "") -> None:
        self._move(step, job, FAILED, reason, at, msg or (str(error) if error else ""))
        self._refresh_blocked(step, [job])

    def _abort_tree(self, step: Step, roots: list[str], reason: str, at: float, msg: str) -> None:
        """Abort ``roots`` and every unfinished job below them, stopping their attempts."""
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

    # -- attempts ----------------------------------------------------------------
    def _schedule(self, step: Step, at: float) -> None:
        """Send every ready job, unless the run is cancelled or held."""
        if not self._runnable():
            return
        for job in sorted(self._ready, key=self._rank.__getitem__):
            j = self._jobs[job]
            j.attempt += 1
            j.submitted = True
            self._inflight.add(job)
            self.records[job].attempts.append(Attempt(j.attempt))
            inputs = {p: self.records[p].result_data for p in self.graph.parents(job)}
            step.instructions.append(Submit(job, j.attempt, inputs))
        self._ready.clear()

    def _stop_attempt(self, step: Step, job: str, at: float) -> None:
        """End the current attempt of ``job`` if it is queued or running."""
        j = self._jobs[job]
        if job not in self._inflight:
            return
        if j.status == STARTED:
            step.instructions.append(Interrupt(job, j.attempt, j.engine, self.options_for(job).kill_grace))
        else:
            step.instructions.append(Withdraw(job, j.attempt))
        self._end_attempt(job, Outcome(OUTCOME_INTERRUPTED), ATTEMPT_CANCELLED, at)

    def _end_attempt(self, job: str, outcome: Outcome, label: str, at: float, error: ErrorInfo | None = None) -> None:
        """Close the current attempt of ``job`` with ``label`` (one of ``states.ATTEMPT_OUTCOMES``)."""
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
