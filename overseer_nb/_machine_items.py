"""The items of mapped job types in the machine: made when their parent finishes, forgotten when it runs again.

A mixin of :class:`~overseer_nb._machine_base.MachineBase` (pure, as the rest of the machine).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .records import JobRecord
from .states import ITEMS, UNSTARTED, mapped_status
from .steps import Step

if TYPE_CHECKING:
    from ._machine_base import MachineBase

__all__ = ["MappedItems"]


class MappedItems:
    """Expanding and collapsing mapped types; a mapped type's status follows its items."""

    def _follow_items(self: MachineBase, step: Step, job: str, at: float) -> None:
        """Move mapped type ``job`` to the status its items give (``states.mapped_status``)."""
        new = mapped_status(self._counts[job], self.topo.items[job])
        if new != self._jobs[job].status:
            self._move(step, job, new, ITEMS, at)

    def _follows_items(self: MachineBase, job: str) -> bool:
        """True for a mapped type whose items are known: its status is theirs, never moved on its own."""
        return self.topo.is_gate(job) and self.topo.items[job] is not None

    def _expand(self: MachineBase, step: Step, job: str, count: int, at: float) -> None:
        """Mapped ``job`` (and those mapping over it) have ``count`` items now; send what is ready."""
        waited: set[str] = set()  # what waited for the gates: it waits for the items now (or for nothing)
        for t in self.topo.with_items_of(job):
            waited.update(self.topo.children(t))
        types = self.topo.expand(job, count)
        made: list[str] = []
        for t in types:
            keys = self.topo.item_keys(t)
            step.expanded[t] = count
            self._counts[t] = {UNSTARTED: count}
            for i, key in enumerate(keys):
                self._jobs[key] = self._new_job()
                self._jobs[key].attempt = self._used.pop(key, 0)  # numbers go on: a result file per attempt
                self.records[key] = JobRecord(t, index=i)
            self.records[t].items = [self.records[k] for k in keys]
            made.extend(keys)
        waiting = set(made) | {k for k in waited if k in self.topo}
        for key in made:
            waiting.update(self.topo.children(key))
        self._refresh_ready(sorted(waiting, key=self.topo.rank))
        self._refresh_blocked(step, [*types, *made])
        for t in types:
            self._follow_items(step, t, at)

    def _collapse(self: MachineBase, step: Step, job: str, at: float) -> None:
        """Forget the items of mapped ``job`` and of the types mapping over it (its parent maps anew)."""
        types = self.topo.with_items_of(job)
        for key in self.topo.collapse(job):
            self._ready.discard(key)
            self._inflight.discard(key)
            self._used[key] = self._jobs[key].attempt
            del self._jobs[key], self.records[key]
            step.removed.append(key)
        for t in types:
            self.records[t].items = []
            self._counts[t] = {}
            self.records[t].message = ""
            if self._jobs[t].status != UNSTARTED:
                self._move(step, t, UNSTARTED, ITEMS, at)

