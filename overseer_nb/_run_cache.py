"""The run's side of the cache (SPEC §13): fingerprint each job about to be sent, reuse an earlier result.

One :class:`RunCache` per run. Before the loop sends the jobs a step made
ready, it fingerprints them (:mod:`overseer_nb.cache`) and asks the journal
for finished jobs of earlier runs with the same fingerprints, in one query;
those are finished from that result (``machine.cached``) instead of sent.
Every job gets its one-line explanation (``run.explain``). Handler
fingerprints are made once per handler and forgotten when handlers change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .cache import (
    Uncacheable,
    digest_args,
    fingerprint_of,
    handler_print,
    input_digest,
    job_parts,
    why_it_ran,
)
from .display import Table
from .errors import UnknownJobError
from .graph import split_key
from .handlers import current_lifecycle
from .states import FINISHED
from .steps import Submit

if TYPE_CHECKING:
    from .running import Run

__all__ = ["RunCache", "explain", "plan", "plan_table", "PlanRow"]


class RunCache:
    """Fingerprints and reuse for ``run``; see the module docstring."""

    def __init__(self, run: Run):
        self.run = run
        # ids of the stage functions -> (the functions, kept so ids stay theirs; their print or why not)
        self._handlers: dict[tuple[int, ...], tuple[tuple, Any]] = {}
        self._args: dict[str, str] | Uncacheable | None = None
        self.forced: set[str] = set()  # jobs a rerun asked for: they run whatever the cache holds

    def forget(self) -> None:
        """Handlers (or the globals they read) may have changed: fingerprint them anew."""
        self._handlers.clear()

    def check(self, submits: Iterable[Submit]) -> dict[str, tuple]:
        """Of ``submits``, those an earlier run already made: job -> (run id, result, length, item digests)."""
        run, records = self.run, self.run.machine.records
        wanted: dict[str, str] = {}
        for ins in submits:
            rec = records[ins.job]
            kind = split_key(ins.job)[0]
            rec.fingerprint, rec.fingerprint_parts = None, None
            if not run.machine.options_for(ins.job).cache:
                on = run.options.cache
                rec.explanation = (f"ran: cache=False for {kind!r}" if on else "ran: the cache is off (cache=False)")
                continue
            if ins.job in self.forced:
                self.forced.discard(ins.job)
                rec.explanation = "ran: rerun asked for it"
                continue
            try:
                parts = job_parts(self.handler_print(kind), self.arg_digests(),
                                  {p: input_digest(d) for p, d in ins.inputs.items()})
            except Uncacheable as exc:
                rec.explanation = f"ran: it cannot be cached: {exc}"
                continue
            rec.fingerprint_parts = parts
            rec.fingerprint = wanted[ins.job] = fingerprint_of(parts)
        if not wanted:
            return {}
        recorder = run.recorder
        if recorder is None:
            for job in wanted:
                records[job].explanation = "ran: the cache needs the journal (journal=False)"
            return {}
        found = recorder.find_cached(sorted(set(wanted.values())))
        hits = {job: found[fp] for job, fp in wanted.items() if fp in found}
        for job in wanted:  # a miss is explained when asked (one journal read fewer per step)
            records[job].explanation = ""
        for job, (run_id, *_rest) in hits.items():
            records[job].explanation = f"cached from run {run_id}"
        return hits

    def handler_print(self, kind: str) -> Any:
        """The fingerprint of ``kind``'s handler as it is now (made once per handler object)."""
        life = current_lifecycle(kind, self.run.handlers[kind])
        stages = (life.pre_process, life.process, life.post_process)
        key = tuple(id(f) for f in stages)  # many job types may share one function: printed once
        known = self._handlers.get(key)
        if known is None or any(a is not b for a, b in zip(known[0], stages, strict=True)):
            try:
                found: Any = handler_print({"pre_process": stages[0], "process": stages[1],
                                            "post_process": stages[2]})
            except Uncacheable as exc:
                found = exc
            known = self._handlers[key] = (stages, found)
        if isinstance(known[1], Uncacheable):
            raise known[1]
        return known[1]

    def arg_digests(self) -> dict[str, str]:
        """Each run argument's digest."""
        if self._args is None:
            try:
                self._args = digest_args(self.run.args)
            except Uncacheable as exc:
                self._args = exc
        if isinstance(self._args, Uncacheable):
            raise self._args
        return self._args


def explain(run: Run, job: str) -> str:
    """Why ``job`` of ``run`` ran or was reused, in one line (``Run.explain``)."""
    rec = run.machine.records.get(job)
    if rec is None:
        run.graph.parents(split_key(job)[0])  # UnknownJobError with a suggestion
        raise UnknownJobError(f"{job!r} is not a job of run {run.run_id}")
    if rec.mapped:
        _explain_misses(run, [item for item in rec.items if not item.explanation])
        counts: dict[str, int] = {}
        for item in rec.items:
            if item.explanation:
                counts[item.explanation] = counts.get(item.explanation, 0) + 1
        return "; ".join(f"{n} item{'s' if n != 1 else ''}: {line}" for line, n in counts.items()) \
            or "its items are not known yet"
    _explain_misses(run, [rec] if not rec.explanation else [])
    if rec.explanation:
        return rec.explanation
    if not run.machine.options_for(job).cache:
        return "ran: the cache is off (cache=False)" if rec.attempts else "not sent; the cache is off"
    return "not sent yet" if rec.status != FINISHED else "finished before the cache looked at it"


def _explain_misses(run: Run, records: list[Any]) -> None:
    """Say why each of ``records`` ran (fingerprinted, not reused): what changed since it last ran before this run."""
    pending = [rec for rec in records if rec.fingerprint_parts is not None and rec.cached_from is None]
    if not pending or run.recorder is None:
        return
    earlier = run.recorder.last_parts([rec.key for rec in pending], before=run.created)
    for rec in pending:
        rec.explanation = why_it_ran(rec.type, earlier.get(rec.key), rec.fingerprint_parts)


def plan(run: Run) -> dict[str, str]:
    """What a run of ``run``'s graph would do with the cache, job type by type, without running anything.

    A job whose parents would all be reused is looked up as the run would;
    one whose parent runs again is said to run (its input is made anew). A
    mapped type's items are decided when it runs.
    """
    lines: dict[str, str] = {}
    reused: dict[str, Any] = {}  # job type -> its result, when it would be reused
    recorder = run.recorder
    for job in run.graph.topological_order():
        if not run.machine.options_for(job).cache:
            lines[job] = f"would run: cache=False for {job!r}" if run.options.cache else "would run: the cache is off"
            continue
        if run.graph.each_of(job) is not None or any(run.graph.each_of(p) for p in run.graph.parents(job)):
            lines[job] = "would be decided when it runs: its items are known only then"
            continue
        again = [p for p in run.graph.parents(job) if p not in reused]
        if again:
            lines[job] = f"would run: its input {again[0]!r} is made again"
            continue
        try:
            parts = job_parts(run.cache.handler_print(job), run.cache.arg_digests(),
                              {p: input_digest(reused[p]) for p in run.graph.parents(job)})
        except Uncacheable as exc:
            lines[job] = f"would run: it cannot be cached: {exc}"
            continue
        if recorder is None:
            lines[job] = "would run: the cache needs the journal (journal=False)"
            continue
        fp = fingerprint_of(parts)
        found = recorder.find_cached([fp]).get(fp)
        if found is not None:
            reused[job] = found[1]
            lines[job] = f"would be cached from run {found[0]}"
        else:
            earlier = recorder.last_parts([job], before=run.created).get(job)
            lines[job] = "would run" + why_it_ran(job, earlier, parts).removeprefix("ran")
    return lines


@dataclass(frozen=True)
class PlanRow:
    """One job type of a cache dry run: what a run would do with it, and why."""

    job: str
    plan: str

    columns: ClassVar[tuple[str, ...]] = ("job", "with the cache")
    empty: ClassVar[str] = "(no jobs)"

    def cells(self) -> tuple[str, str]:
        return (self.job, self.plan)


def plan_table(run: Run) -> Table:
    """:func:`plan` as a table (what ``ov.run(..., cache=True, dry_run=True)`` returns)."""
    lines = plan(run)
    title = f"dry run of {len(lines)} job types with the cache: nothing was run"
    return Table([PlanRow(job, line) for job, line in lines.items()], PlanRow, title=title, right_digits=False)
