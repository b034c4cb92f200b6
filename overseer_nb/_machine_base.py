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

from ._machine_ahead import SendAhead
from ._machine_inputs import ReadySet, capped, job_inputs
from ._machine_items import MappedItems
from ._machine_losses import LostResults
from .errors import RunError, UnknownJobError
from .graph import JobGraph, split_key
from .options import RunOptions
from .records import Attempt, ErrorInfo, JobRecord, Outcome
from .states import (
    ABORTED,
    ATTEMPT_CANCELLED,
    ATTEMPT_FINISHED,
    BAD_STATUSES,
    FAILED,
    FINISHED,
    HOLDS,
    ITEMS,
    OUTCOME_INTERRUPTED,
    STARTED,
    UNSTARTED,
    check_transition,
    display_state,
)
from .steps import Interrupt, Step, Submit, Transition, Withdraw
from .topology import Topology

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
    cached: bool = False  # finished by reusing an earlier run's result
    after: frozenset = frozenset()  # sent ahead of these parents, not seen finishing yet
    done_at: float = 0.0  # when it was last shown finished
    shared: str = ""  # how its attempt shares its result with children sent ahead of it (steps.SHARE_*), or ''
    early: tuple | None = None  # news of it that waits for them: ("started", engine, at, task) or ("ended", outcome)


class MachineBase(SendAhead, MappedItems, LostResults):
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
        self.topo = Topology(graph)  # the jobs as they are now: types, gates, items once known
        self.options = options or RunOptions()
        self.job_options = dict(job_options or {})
        self.rng = rng or random.Random()
        self.cancelled = False
        self.records = {job: JobRecord(job, mapped=self.topo.is_gate(job)) for job in graph}
        self._holds: set[str] = set()  # why nothing may be submitted now: states.HOLDS
        self._jobs = {job: _Job(pending=len(self.topo.parents(job))) for job in graph}
        self._ready = ReadySet(self.topo.rank, (j for j in graph if not graph.parents(j) and not self.topo.is_gate(j)))
        self._counts: dict[str, dict[str, int]] = {t: {} for t in graph.mapped}  # mapped type -> its items' statuses
        # most attempts out (queued or running) at once; None: no limit. A bounded window keeps a
        # map of 10,000 items from flooding the cluster's scheduler; the rest wait here, ready.
        self.max_out: int | None = None
        self._timers: list[tuple[float, str, int]] = []  # (when, job, attempt): backoffs
        self._deadlines: list[tuple[float, str, int]] = []  # timeouts of running attempts
        self._inflight: set[str] = set()  # submitted, not ended
        self._used: dict[str, int] = {}  # last attempt of items forgotten: their next items go on from there
        self._init_ahead()

    @staticmethod
    def _new_job() -> _Job:
        return _Job()

    # -- reading -----------------------------------------------------------------
    def status(self, job: str) -> str:
        """Stored status of ``job``."""
        return self._jobs[job].status

    def view(self, job: str) -> tuple[bool, int, Any, str | None, float | None]:
        """What ``run.why`` reads of ``job``: (blocked, attempt, engine, waiting reason, backoff end or None)."""
        j = self._jobs[job]
        until = next((w for w, k, n in self._timers if k == job and n == j.attempt), None)
        return j.blocked, j.attempt, j.engine, j.waiting_reason, until

    @property
    def out(self) -> frozenset[str]:
        """The jobs whose attempt is out (queued or running)."""
        return frozenset(self._inflight)

    def display_state(self, job: str) -> str:
        """Derived display state of ``job``."""
        j = self._jobs[job]
        return display_state(j.status, blocked=j.blocked, waiting_reason=j.waiting_reason, cached=j.cached)

    def is_idle(self) -> bool:
        """True when nothing runs, nothing waits to be sent and no backoff is pending."""
        return not (self._inflight or self._runnable() or self._timers)

    def next_wakeup(self) -> float | None:
        """The earliest time a backoff ends or a timeout fires, or None."""
        times = [t[0] for t in self._timers[:1] + self._deadlines[:1]]
        return min(times) if times else None

    def options_for(self, job: str) -> RunOptions:
        """The options of ``job`` (an item: of its type): its type's own, else the run's."""
        return self.job_options.get(split_key(job)[0], self.options)

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
        if job in self.topo:
            return
        t, i = split_key(job)
        if i is not None and t in self.topo.items:
            n = self.topo.items[t]
            known = "its items are not known yet" if n is None else f"it has {n} item{'s' if n != 1 else ''}"
            raise UnknownJobError(f"{job!r} is not an item of {t!r}: {known}")
        self.graph.parents(t)  # raises UnknownJobError with a suggestion
        raise UnknownJobError(job)

    # -- moves -------------------------------------------------------------------
    def _move(self, step: Step, job: str, new: str, reason: str, at: float, message: str = "") -> None:
        j = self._jobs[job]
        check_transition(j.status, new, reason, job=job)
        old, j.status = j.status, new
        if new == FINISHED:
            j.done_at = at
        if new != UNSTARTED:
            j.waiting_reason = None
        rec = self.records[job]
        rec.status = new
        rec.message = message
        step.transitions.append(Transition(job, old, new, reason, j.attempt, at, message))
        self._note_display(step, job)
        t, i = split_key(job)
        if i is not None:  # an item: its type's status follows
            counts = self._counts[t]
            counts[old] = counts.get(old, 0) - 1
            counts[new] = counts.get(new, 0) + 1
            self._follow_items(step, t, at)

    def _note_display(self, step: Step, job: str) -> None:
        state = self.display_state(job)
        rec = self.records[job]
        if rec.display_state != state or job in step.display:
            rec.display_state = state
            step.display[job] = state

    def _reset(self, step: Step, selected: set[str], reason: str, at: float) -> None:
        """Put ``selected`` back to unstarted (retry, rerun, resume) and send what is ready.

        A mapped type whose parent runs again forgets its items: it maps anew
        when that parent finishes (the number of items may change).
        """
        self.cancelled = False
        for t in self.graph.mapped:
            parent = self.graph.each_of(t)
            if parent in selected and parent not in self.topo.items and self.topo.items[t] is not None:
                self._collapse(step, t, at)
        selected = {job for job in selected if job in self.topo}
        order = sorted(selected, key=self.topo.rank)
        for job in order:
            j = self._jobs[job]
            j.faults = j.losses = j.auto_retries = 0
            j.waiting_reason = None
            j.cached = False
            self.records[job].cached_from = None
            if self._follows_items(job):
                continue
            if j.status != UNSTARTED:
                self.records[job].result_data = None
                # retrying a mapped type whose parent gave no list runs that (finished) parent again
                why = "rerun" if reason == "retry" and j.status == FINISHED else reason
                self._move(step, job, UNSTARTED, ITEMS if self.topo.is_gate(job) else why, at)
        touched = set(selected)
        for job in selected:
            touched.update(self.topo.children(job))
        self._refresh_ready(touched)
        self._refresh_blocked(step, order)
        self._schedule(step, at)

    def _refresh_ready(self, jobs: Iterable[str]) -> None:
        """Recount the unfinished parents of ``jobs``; those unstarted with none, not in flight, are ready."""
        for job in jobs:
            j = self._jobs[job]
            j.pending = sum(self._jobs[p].status != FINISHED for p in self.topo.parents(job))
            if job in self._inflight or self.topo.is_gate(job):
                continue
            if j.status == UNSTARTED and j.pending == 0:
                self._ready.add(job)
            else:
                self._ready.discard(job)

    def _refresh_blocked(self, step: Step, changed: Iterable[str]) -> None:
        """Recompute ``blocked`` below ``changed`` jobs, in topological order."""
        below: set[str] = set()
        for job in changed:
            below |= self.topo.descendants(job)
        for job in sorted(below, key=self.topo.rank):
            j = self._jobs[job]
            j.blocked = any(
                self._jobs[p].status in BAD_STATUSES or self._jobs[p].blocked for p in self.topo.parents(job)
            )
            self._note_display(step, job)

    def _requeue(self, step: Step, job: str, reason: str, at: float, not_before: float, note: str) -> None:
        """Put a running ``job`` back to unstarted; it is ready at ``not_before``."""
        j = self._jobs[job]
        j.waiting_reason = reason
        self._move(step, job, UNSTARTED, reason, at, note)
        if not_before <= at:
            if j.pending == 0:  # (one sent ahead waits for its parents still)
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
            tree |= self.topo.descendants(root)
        for job in sorted(tree, key=self.topo.rank):
            j = self._jobs[job]
            if j.status not in (UNSTARTED, STARTED) or self._follows_items(job):
                continue
            why = reason if job in roots else "parent aborted"
            self._stop_attempt(step, job, at)
            self._move(step, job, ABORTED, why, at, msg if job in roots else f"a parent was aborted: {msg}")
            self._ready.discard(job)
        self._refresh_blocked(step, roots)

    # -- attempts ----------------------------------------------------------------
    def _schedule(self, step: Step, at: float) -> None:
        """Withdraw what was sent ahead of attempts that ended without a result; send every ready job.

        Then, sending ahead (``ahead``), the jobs whose parents are out. Nothing
        is sent while the run is cancelled or held, or the window is full.
        """
        if self._to_fence:
            self._fence_behind(step, at)
        if self.cancelled or self._holds:
            return
        room = None if self.max_out is None else self.max_out - len(self._inflight)
        if room is not None and room <= 0:
            return
        capping = self.options.max_parallel is not None or any(
            o.max_parallel is not None for o in self.job_options.values())
        if self._ready:
            room = self._send_ready(step, room, capping)
        if self.ahead and self._candidates:
            self._send_ahead(step, room, capping)

    def _send_ready(self, step: Step, room: int | None, capping: bool) -> int | None:
        """Send ready jobs in order while there is ``room``; return the room left."""
        if room is not None and room < len(self._ready) and not capping:
            # the first few in order, not a sort of every ready job at each event (a map of 10,000)
            ready = self._ready.first(room)
        else:
            ready = sorted(self._ready, key=self.topo.rank)
        held_back = self._capped(ready) if capping else set()
        for job in ready:
            if job in held_back:
                continue
            if room is not None:
                if room <= 0:
                    break
                room -= 1
            self._ready.discard(job)
            j = self._jobs[job]
            j.attempt += 1
            j.submitted = True
            self._inflight.add(job)
            self.records[job].attempts.append(Attempt(j.attempt))
            step.instructions.append(Submit(job, j.attempt, self._inputs(job), shared=self._share(job)))
        return room

    def _capped(self, jobs: list[str]) -> set[str]:
        """Of ready ``jobs``, those their type's ``max_parallel`` keeps waiting now."""
        return capped(jobs, self._inflight, self.options_for)

    def _inputs(self, job: str) -> dict[str, Any]:
        """What ``job`` gets as ``job.inputs``, by parent type: results, an item of one, or a list of items'."""
        return job_inputs(job, self.graph, self.topo, self.records)

    def _stop_attempt(self, step: Step, job: str, at: float) -> None:
        """End the current attempt of ``job`` if it is queued or running."""
        j = self._jobs[job]
        if job not in self._inflight:
            return
        if j.after and j.status != STARTED:  # sent ahead, never ran: forgotten, as if it had waited here
            step.instructions.append(Withdraw(job, j.attempt))
            self._forget_unsent(job)
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
        j.after, j.early, j.shared = frozenset(), None, ""
        if label != ATTEMPT_FINISHED:
            self._to_fence.append(job)  # what was sent ahead of it gets no result from it
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
