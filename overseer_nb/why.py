"""Why a job is not running: one line from the state machine's view of it (``run.why(job)``).

Pure: it reads a :class:`~overseer_nb.machine.RunMachine` and the time it is
given, and changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import UnknownJobError
from .graph import split_key
from .states import BAD_STATUSES, FINISHED, STARTED, UNSTARTED

if TYPE_CHECKING:
    from .machine import RunMachine

__all__ = ["why_waiting"]


def why_waiting(machine: RunMachine, job: str, now: float) -> str:
    """One line: why ``job`` (a type, or an item ``train[3]``) is where it is, and what it waits for."""
    if job not in machine.records:
        kind = split_key(job)[0]
        machine.graph.parents(kind)  # an unknown type: UnknownJobError with a suggestion
        raise UnknownJobError(f"{job!r} is not an item of {kind!r} (it has {len(machine.topo.item_keys(kind))})")
    rec, topo, status = machine.records[job], machine.topo, machine.status(job)
    blocked, attempt, engine, reason, until = machine.view(job)
    out = machine.out
    if rec.mapped and topo.items[job] is None:
        parent = machine.graph.each_of(job)
        if status == UNSTARTED:
            return f"waiting for {parent!r} to finish: its result says how many items {job!r} has"
    if status == STARTED:
        return "running" if rec.mapped else f"running on engine {engine} (attempt {attempt})"
    if status == FINISHED:
        return f"finished (from run {rec.cached_from})" if rec.cached_from else "finished"
    if status in BAD_STATUSES:
        return f"{status}: {rec.message}" if rec.message else status
    parents = topo.parents(job)
    bad = sorted(p for p in topo.ancestors(job) if machine.status(p) in BAD_STATUSES and not topo.is_gate(p))
    if blocked and bad:
        return f"blocked by {_names(machine, bad)} {machine.status(bad[0])}; retry it to go on"
    waiting = [p for p in parents if machine.status(p) != FINISHED]
    if waiting:
        line = f"waiting for parent{'s' if len(waiting) != 1 else ''} {_names(machine, waiting)}"
        if job in out:  # sent ahead of them
            line += "; sent already: the cluster starts it as soon as they finish"
        return line
    if until is not None:
        return f"waiting for backoff ({max(0.0, until - now):.0f} s left) after {reason or 'a fault'}"
    if machine.held:
        return f"held ({', '.join(sorted(machine.holds))}): nothing is sent until that ends"
    if job in out:
        busy = sum(1 for k in out if machine.status(k) == STARTED)
        return f"sent, waiting for an engine ({busy} busy)"
    cap = machine.options_for(job).max_parallel
    kind = split_key(job)[0]
    mine = sum(1 for k in out if split_key(k)[0] == kind)
    if cap is not None and mine >= cap:
        return f"capped by max_parallel={cap} ({mine} of {kind!r} out)"
    if machine.max_out is not None and len(out) >= machine.max_out:
        return f"ready, in the queue: at most {machine.max_out} attempts are out at once"
    return "ready: it is sent at the next step" if not machine.cancelled else "the run was cancelled"


def _names(machine: RunMachine, jobs: list[str], most: int = 4) -> str:
    shown = ", ".join(map(repr, jobs[:most]))
    return shown + (f" and {len(jobs) - most} more" if len(jobs) > most else "")
