"""What the state machine hands a job it sends: its inputs, and which ready jobs ``max_parallel`` holds back.

Pure helpers of :class:`~overseer_nb._machine_base.MachineBase`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .graph import JobGraph, item_key, split_key
from .records import ItemOf, ItemsOf, JobRecord
from .topology import Topology

__all__ = ["capped", "job_inputs", "ReadySet"]


def capped(jobs: list[str], inflight: Iterable[str], options_for: Callable[[str], Any]) -> set[str]:
    """Of ready ``jobs``, those their type's ``max_parallel`` keeps waiting, with ``inflight`` out now."""
    caps = {t: options_for(t).max_parallel for t in {split_key(k)[0] for k in jobs}}
    if all(c is None for c in caps.values()):
        return set()
    busy: dict[str, int] = {}
    for key in inflight:
        t = split_key(key)[0]
        busy[t] = busy.get(t, 0) + 1
    held: set[str] = set()
    for key in jobs:
        t = split_key(key)[0]
        cap = caps[t]
        if cap is not None and busy.get(t, 0) >= cap:
            held.add(key)
        else:
            busy[t] = busy.get(t, 0) + 1
    return held


def job_inputs(job: str, graph: JobGraph, topo: Topology, records: dict[str, JobRecord]) -> dict[str, Any]:
    """What ``job`` gets as ``job.inputs``, by parent type.

    A parent's result; for an item of a mapped type, the item of the parent it
    maps over (:class:`ItemOf`, with the item's own digest when known), or that
    parent's item when both are mapped (element by element); for a mapped
    parent taken whole, the list of its items' results (:class:`ItemsOf`).
    """
    t, i = split_key(job)
    mapped_over = graph.each_of(t)
    inputs: dict[str, Any] = {}
    for p in graph.parents(t):
        if p in topo.items:
            if i is not None and p == mapped_over:  # element by element
                inputs[p] = records[item_key(p, i)].result_data
            else:
                inputs[p] = ItemsOf(tuple(records[k].result_data for k in topo.item_keys(p)))
        else:
            rec = records[p]
            if i is not None and p == mapped_over:
                digests = rec.item_digests
                inputs[p] = ItemOf(rec.result_data, i, digests[i] if digests and i < len(digests) else None)
            else:
                inputs[p] = rec.result_data
    return inputs


class ReadySet:
    """The jobs ready to be sent: a set that also gives its first few in order, without sorting them all.

    ``rank`` orders jobs (parents first); :meth:`first` pops nothing and costs
    O(k log n) for k jobs from a lazy heap, so sending a few jobs at each event
    of a 10,000-item map stays cheap.
    """

    def __init__(self, rank: Callable[[str], Any], jobs: Iterable[str] = ()):
        self._rank = rank
        self._set: set[str] = set()
        self._heap: list[tuple[Any, str]] = []
        for job in jobs:
            self.add(job)

    def add(self, job: str) -> None:
        if job not in self._set:
            self._set.add(job)
            heapq.heappush(self._heap, (self._rank(job), job))

    def discard(self, job: str) -> None:
        self._set.discard(job)  # its heap entry goes when it comes up

    def clear(self) -> None:
        self._set.clear()
        self._heap.clear()

    def first(self, count: int) -> list[str]:
        """The ``count`` first ready jobs in order (fewer if fewer are ready)."""
        found: list[str] = []
        kept: list[tuple[Any, str]] = []
        while self._heap and len(found) < count:
            entry = heapq.heappop(self._heap)
            if entry[1] in self._set and entry[1] not in found:
                found.append(entry[1])
                kept.append(entry)
        for entry in kept:
            heapq.heappush(self._heap, entry)
        return found

    def __contains__(self, job: object) -> bool:
        return job in self._set

    def __len__(self) -> int:
        return len(self._set)

    def __bool__(self) -> bool:
        return bool(self._set)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._set))
