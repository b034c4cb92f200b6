"""Sending jobs ahead of their parents (SPEC §14): the machine's part of eager dispatch.

With :attr:`SendAhead.ahead` on (an executor with dependencies and a shared
result store), a job whose parents are all finished or out is sent at once,
``after`` its parents' attempts: the cluster's scheduler starts it the moment
they end, without waiting for the kernel, and it reads their results from the
store. The machine keeps every rule as if it had waited:

- news of such a job (an engine took it, it ended) waits until the machine has
  seen each of those parents finish, so a job never shows ``started`` before
  its parents finished;
- an attempt of a parent that ends any other way (failed, faulted, aborted,
  timed out, lost, withdrawn) withdraws every job sent ahead of it, and theirs
  in turn; a task that starts anyway finds no result and ends at once
  (``fenced``) without running its handler;
- the window (``max_out``) and ``max_parallel`` count jobs sent ahead as out.

How far ahead: as far as the window lets, ready jobs first. Nothing is sent
ahead of or as a job whose type uses the cache (its fingerprint needs its
inputs' contents, and a cached parent never runs), nor a mapped type before its
parent finished (its items are not known).
Pure, as the rest of the machine: a mixin of
:class:`~overseer_nb._machine_base.MachineBase`.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

from .graph import item_key, split_key
from .records import Attempt, ErrorInfo, ItemsOf, Outcome
from .states import ATTEMPT_CANCELLED, FINISHED, OUTCOME_FENCED, STARTED, UNSTARTED
from .steps import SHARE_MEMORY, SHARE_STORE, AfterResult, Step, Submit, Withdraw

if TYPE_CHECKING:
    from ._machine_base import MachineBase

__all__ = ["SendAhead"]

_LATER = "later"  # not now: no room in the window, or max_parallel; it stays a candidate


class SendAhead:
    """The eager-dispatch half of the machine (see the module docstring)."""

    def _init_ahead(self: MachineBase) -> None:
        self.ahead = False  # set by the run: its executor has dependencies and the engines share the store
        # send ahead only while fewer jobs than this are out with every parent finished: those keep the
        # engines busy, and one sent ahead would only cost work (the run sets it: twice its engines)
        self.ahead_below = 4
        self._to_fence: list[str] = []  # jobs whose attempt ended without a result: withdraw those sent ahead
        self._candidates: list[tuple[Any, str]] = []  # (rank, job): children of jobs out, to consider

    # -- sending ---------------------------------------------------------------------
    def _share(self: MachineBase, job: str) -> str:
        """``job`` is being sent: may its children be sent ahead of it? Then how it shares its result (or '').

        Only while too few jobs that can start now are out to keep every engine
        busy (``ahead_below``); otherwise the engines have work until the kernel
        sends its children once it finished, and sharing would cost the cluster
        work and gain nothing. A job whose one such child has no other parent (a
        chain) keeps its result in its engine's memory, where that child will
        run; any other writes it to the store, so its children can run on every engine.
        """
        if not self.ahead or self.options_for(job).cache:
            return ""
        children = [c for c in self.topo.children(job) if not self.topo.is_gate(c) and not self.options_for(c).cache]
        if not children or self._ready_out() > self.ahead_below:
            return ""
        chain = len(children) == 1 and len(self.topo.parents(children[0])) == 1
        shared = self._jobs[job].shared = SHARE_MEMORY if chain else SHARE_STORE
        for child in children:
            heapq.heappush(self._candidates, (self.topo.rank(child), child))
        return shared

    def _ready_out(self: MachineBase) -> int:
        """Jobs out whose parents all finished: those an engine can start now."""
        return sum(1 for job in self._inflight if not self._jobs[job].after)

    def _send_ahead(self: MachineBase, step: Step, room: int | None, capping: bool) -> None:
        """Send candidates whose parents are all finished or out, in order, while the window has room.

        A job is sent ahead only of parents that share their result (:meth:`_share`).
        """
        kept: list[tuple[Any, str]] = []
        while self._candidates:
            if room is not None and room <= 0:
                break
            entry = heapq.heappop(self._candidates)
            job = entry[1]
            found = self._ahead_of(job, capping)
            if found is None:
                continue
            if found == _LATER:
                kept.append(entry)
                continue
            if room is not None:
                room -= 1
            j = self._jobs[job]
            j.attempt += 1
            j.submitted = True
            j.after = frozenset(found)
            self._inflight.add(job)
            self.records[job].attempts.append(Attempt(j.attempt))
            after = tuple((p, self._jobs[p].attempt) for p in sorted(found, key=self.topo.rank))
            follow = tuple((p, n) for p, n in after if self._jobs[p].shared == SHARE_MEMORY)
            inputs = self._ahead_inputs(job, found)
            step.instructions.append(Submit(job, j.attempt, inputs, after, shared=self._share(job), follow=follow))
        for entry in kept:
            heapq.heappush(self._candidates, entry)

    def _ahead_of(self: MachineBase, job: str, capping: bool) -> frozenset[str] | str | None:
        """The parents ``job`` would be sent ahead of; ``_LATER``; None if it cannot be sent ahead now."""
        j = self._jobs.get(job)
        if j is None or j.status != UNSTARTED or j.submitted or j.blocked or job in self._ready:
            return None
        if self.topo.is_gate(job) or self.options_for(job).cache or self._backing_off(job):
            return None
        out, in_memory = set(), 0
        for parent in self.topo.parents(job):
            p = self._jobs[parent]
            if p.status == FINISHED:
                continue
            if parent not in self._inflight or p.status not in (UNSTARTED, STARTED) or p.blocked or not p.shared:
                return None  # (a parent using the cache never shares: it may not run at all)
            in_memory += p.shared == SHARE_MEMORY
            out.add(parent)
        if in_memory > 1:
            return None  # it cannot run on two engines at once: it waits for one of them to finish
        if not out:
            return None  # every parent finished: it is ready, and sent as ready jobs are
        if capping and self._capped([job]):
            return _LATER
        return frozenset(out)

    def _backing_off(self: MachineBase, job: str) -> bool:
        attempt = self._jobs[job].attempt
        return any(k == job and n == attempt for _w, k, n in self._timers)

    def _ahead_inputs(self: MachineBase, job: str, after: frozenset[str]) -> dict[str, Any]:
        """``job``'s inputs, with an :class:`AfterResult` for each parent (or parent's item) still out."""
        inputs = self._inputs(job)
        t, i = split_key(job)
        mapped_over = self.graph.each_of(t)
        for parent, value in inputs.items():
            if isinstance(value, ItemsOf):
                keys = self.topo.item_keys(parent)
                inputs[parent] = ItemsOf(tuple(
                    AfterResult(k, self._jobs[k].attempt) if k in after else v for k, v in zip(keys, value.items, strict=True)
                ))
                continue
            key = item_key(parent, i) if (parent in self.topo.items and i is not None and parent == mapped_over) \
                else parent
            if key in after:
                inputs[parent] = AfterResult(key, self._jobs[key].attempt)
        return inputs

    # -- news of a job sent ahead -------------------------------------------------------
    def _waits_on_parents(self: MachineBase, job: str) -> bool:
        """True while ``job`` was sent ahead of a parent the machine has not seen finish."""
        return bool(self._jobs[job].after)

    def _parent_finished(self: MachineBase, step: Step, parent: str, child: str, at: float) -> None:
        """``parent`` finished: ``child``, sent ahead of it, waits for one parent fewer; apply its news."""
        c = self._jobs[child]
        if parent not in c.after:
            return
        c.after = c.after - {parent}
        if c.after or c.early is None:
            return
        early, c.early = c.early, None
        if early[0] == "started":
            _kind, engine, when, task = early
            self.records[child].attempts[-1].task = task
            self._start(step, child, engine, at, started=when)
        else:  # it ran already: shown started now (after its parent), on the engine's clock in its attempt
            _kind, outcome = early
            if outcome.kind != OUTCOME_FENCED:
                self._start(step, child, outcome.engine, at, started=outcome.started)
            self._apply_end(step, child, outcome, at)

    # -- fencing -------------------------------------------------------------------------
    def _fence_behind(self: MachineBase, step: Step, at: float) -> None:
        """Withdraw every job sent ahead of an attempt that ended without a result (and those behind it)."""
        while self._to_fence:
            parent = self._to_fence.pop()
            for child in self.topo.children(parent) if parent in self.topo else ():
                c = self._jobs[child]
                if child in self._inflight and parent in c.after:
                    step.instructions.append(Withdraw(child, c.attempt))
                    self._forget_unsent(child)

    def _forget_unsent(self: MachineBase, job: str) -> None:
        """Forget the current attempt of ``job``, sent and never run (withdrawn, fenced); its number stays used.

        It is ready again once its parents finished; what was sent ahead of it
        is withdrawn at the next step.
        """
        j = self._jobs[job]
        self._inflight.discard(job)
        j.submitted = False
        j.after, j.early, j.shared = frozenset(), None, ""
        self.records[job].attempts.pop()
        self._to_fence.append(job)  # and what was sent ahead of it
        if j.pending == 0 and j.status == UNSTARTED and not self._backing_off(job):
            self._ready.add(job)
        else:
            heapq.heappush(self._candidates, (self.topo.rank(job), job))

    def _on_fenced(self: MachineBase, step: Step, job: str, outcome: Outcome, at: float) -> None:
        """The task found a parent's result missing and ended without running its handler: send it again later."""
        if self._jobs[job].status == STARTED:
            # its parents were seen finishing, but a result was not where it looked (still being written on
            # another engine, or one that could not be written came back with the report): sent again by the
            # kernel, placed near its input, with what the kernel has; its handler did not run
            self._end_attempt(job, outcome, ATTEMPT_CANCELLED, at, ErrorInfo("Fenced", outcome.message))
            self._back_for_input(step, job, at, outcome.message)
            return
        self._forget_unsent(job)
