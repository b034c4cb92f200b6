"""The widget's count of the items of a run's mapped job types, by display state.

A mapped type is one node whose bar shows how many of its items are in each
display state. :class:`ItemTally` keeps those counts up to date from the
changes the run publishes (``train[3]`` -> ``failed``), in time proportional to
the changes, not to the items; when the items of a type change as a whole (they
become known, or its parent runs again and they are forgotten) it reads them
anew from the run (:meth:`ItemTally.resync`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..graph import split_key

__all__ = ["ItemTally", "is_item", "job_counts", "item_counts"]


def is_item(key: str) -> bool:
    """True for an item's name (``train[3]``); job types cannot contain brackets."""
    return key.endswith("]")


class ItemTally:
    """Display states of the items of mapped job types, and their counts per type.

    Not thread-safe: one thread (the widget's flusher, under its send lock) uses it.
    """

    def __init__(self, mapped: Iterable[str]):
        self.known: dict[str, int | None] = {t: None for t in mapped}  # items of each type, None: not known yet
        self._states: dict[str, list[str]] = {t: [] for t in self.known}  # index -> display state
        self._counts: dict[str, dict[str, int]] = {t: {} for t in self.known}

    def __contains__(self, job: object) -> bool:
        return job in self.known

    def resync(self, run: Any, job: str) -> None:
        """Read the items of mapped type ``job`` from ``run`` as they are now."""
        count = run.machine.topo.items.get(job)
        items = list(run.jobs[job].items) if count is not None else []
        self.known[job] = None if count is None else len(items)
        states = [item.display_state for item in items]
        self._states[job] = states
        counts: dict[str, int] = {}
        for state in states:
            counts[state] = counts.get(state, 0) + 1
        self._counts[job] = counts

    def stale(self, run: Any) -> list[str]:
        """The mapped types whose number of items in ``run`` differs from the one counted here."""
        items = run.machine.topo.items
        return [t for t, n in self.known.items() if items.get(t) != n]

    def apply(self, key: str, state: str) -> str | None:
        """Item ``key`` shows ``state`` now; returns its type if a count changed.

        A name of an item not known here (of a type mapped anew since) is ignored.
        """
        job, index = split_key(key)
        states = self._states.get(job)
        if states is None or index is None or index >= len(states):
            return None
        old = states[index]
        if old == state:
            return None
        states[index] = state
        counts = self._counts[job]
        counts[old] -= 1
        if not counts[old]:
            del counts[old]
        counts[state] = counts.get(state, 0) + 1
        return job

    def counts(self, job: str) -> dict[str, int] | None:
        """Display state -> how many items of ``job`` are in it; None while its items are not known."""
        return None if self.known[job] is None else dict(self._counts[job])

    def all_counts(self) -> dict[str, dict[str, int] | None]:
        """:meth:`counts` of every mapped type."""
        return {t: self.counts(t) for t in self.known}

    def header_counts(self, states: dict[str, str]) -> dict[str, int]:
        """:func:`job_counts` of ``states`` (job type -> display state) and the items counted here."""
        return job_counts(states, self.all_counts())


def job_counts(states: dict[str, str], items: dict[str, dict[str, int] | None]) -> dict[str, int]:
    """How many jobs are in each display state: each item one job, as ``run.counts()`` counts.

    ``states``: job type -> display state; ``items``: mapped type -> its items'
    counts (None while not known). A mapped type whose items are not known yet
    counts as one job (it may have failed: its parent gave no list).
    """
    counts: dict[str, int] = {}
    for job, state in states.items():
        if items.get(job) is None:
            counts[state] = counts.get(state, 0) + 1
    for found in items.values():
        for state, k in (found or {}).items():
            counts[state] = counts.get(state, 0) + k
    return counts


def item_counts(run: Any) -> dict[str, dict[str, int] | None]:
    """Mapped type -> its items' display states counted (None while not known), read from ``run`` now."""
    tally = ItemTally(run.graph.mapped)
    for job in run.graph.mapped:
        tally.resync(run, job)
    return tally.all_counts()
