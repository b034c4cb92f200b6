"""What the state machine hands a job it sends: its inputs, and which ready jobs ``max_parallel`` holds back.

Pure helpers of :class:`~overseer_nb._machine_base.MachineBase`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .graph import JobGraph, item_key, split_key
from .records import ItemOf, ItemsOf, JobRecord
from .topology import Topology

__all__ = ["capped", "job_inputs"]


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
