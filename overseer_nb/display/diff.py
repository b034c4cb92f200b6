"""What differs between two runs (``ov.diff``): args, graph, handler code, and each job's outcome.

:func:`run_diff` reads two runs (live or loaded from the journal) and the
handler code of each (job type -> (digest, source), as the journal recorded
it) into a :class:`RunDiff`, which prints as text and shows as an HTML table
in a notebook. A mapped job type is one row: its items counted by state, their
attempts summed, its duration from its first item's start to its last one's
end, and the items whose state differs named in its note.
"""

from __future__ import annotations

import difflib
import html
import pickle
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from ..states import FINISHED
from ..text import clip_end
from .tables import Table

__all__ = ["RunDiff", "JobDiff", "JobSide", "CodeDiff", "run_diff", "CODE_UNKNOWN"]

CODE_UNKNOWN = "code unknown"
_NONE = "—"  # a side that has no such job, arg or option
_DIFF_LINES = 40  # lines of a handler's unified diff shown
_PICKLE_SHOWN = 1 << 20  # inline results up to this size are unpickled for their repr


@dataclass(frozen=True)
class JobSide:
    """One job (or mapped type) in one run, as the diff shows it."""

    state: str
    result: str  # a short summary of its result, or of its error if it failed ('' otherwise)
    duration: float | None  # seconds of its last attempt (a mapped type: first start to last end)
    attempts: int
    items: dict[str, str] | None = None  # a mapped type's items -> display state
    token: Any = field(default=None, compare=False)  # what says two results are the same (their bytes)


@dataclass(frozen=True)
class JobDiff:
    """One row of the diff: a job type in run A and in run B (None: not in that run)."""

    job: str
    a: JobSide | None
    b: JobSide | None
    code: str  # "same", "changed", CODE_UNKNOWN, or "" when the job is in one run only
    note: str = ""

    columns: ClassVar[tuple[str, ...]] = (
        "job", "A", "B", "result A", "result B", "duration A", "duration B", "change", "attempts", "code", "note",
    )
    empty: ClassVar[str] = "no jobs"

    @property
    def changed(self) -> bool:
        """True if anything about the job differs: in one run only, state, result, code, items."""
        a, b = self.a, self.b
        if a is None or b is None:
            return True
        return (a.state != b.state or a.result != b.result or a.items != b.items or self.code == "changed"
                or (a.token is not None and b.token is not None and a.token != b.token))

    def cells(self) -> tuple[str, ...]:
        a, b = self.a, self.b
        attempts = _pair(a.attempts if a else None, b.attempts if b else None)
        return (
            self.job, a.state if a else _NONE, b.state if b else _NONE,
            clip_end(a.result, 30) if a else "", clip_end(b.result, 30) if b else "",
            _seconds(a.duration if a else None), _seconds(b.duration if b else None),
            _change(a.duration if a else None, b.duration if b else None), attempts, self.code, self.note,
        )


@dataclass(frozen=True)
class CodeDiff:
    """A job type's handler code in the two runs: ``status`` "same", "changed" or CODE_UNKNOWN; ``diff`` text."""

    job: str
    status: str
    diff: str = ""  # a unified diff of the sources, when both are known and differ
    why: str = ""  # why it is unknown, or why the diff is empty although the code changed


@dataclass(frozen=True)
class RunDiff:
    """What differs between run ``a`` and run ``b``; prints as text, shows as HTML in a notebook.

    args / options: (name, value in A, value in B) of those that differ, as
    reprs (``—``: not given). only_in_a / only_in_b: job types of one graph
    only; parents: (job, parents in A, parents in B) of the others whose
    parents changed. code: job type -> :class:`CodeDiff`; jobs: one
    :class:`JobDiff` per job type of either run, in B's order then A's.
    """

    a: str
    b: str
    args: tuple[tuple[str, str, str], ...]
    options: tuple[tuple[str, str, str], ...]
    only_in_a: tuple[str, ...]
    only_in_b: tuple[str, ...]
    parents: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]
    code: dict[str, CodeDiff]
    jobs: tuple[JobDiff, ...]
    notes: tuple[str, ...] = ()  # where code was read other than from the journal

    @property
    def changed_code(self) -> set[str]:
        """Job types whose handler code differs."""
        return {job for job, c in self.code.items() if c.status == "changed"}

    @property
    def unknown_code(self) -> set[str]:
        """Job types whose code is not known in one of the runs."""
        return {job for job, c in self.code.items() if c.status == CODE_UNKNOWN}

    @property
    def changed_jobs(self) -> set[str]:
        """Job types whose row differs (in one run only, state, result, code or items)."""
        return {row.job for row in self.jobs if row.changed}

    def job(self, name: str) -> JobDiff:
        """The row of job type ``name``; ``KeyError`` naming the job types if there is none."""
        for row in self.jobs:
            if row.job == name:
                return row
        raise KeyError(f"no job {name!r} in either run; the jobs are {', '.join(r.job for r in self.jobs)}")

    def lines(self) -> list[str]:
        """The lines above the table: runs, args, options, graph and code changes."""
        out = [f"A: run {self.a}", f"B: run {self.b}"]
        if self.args:
            out.append("args: " + "; ".join(f"{k}: {va} -> {vb}" for k, va, vb in self.args))
        else:
            out.append("args: the same")
        if self.options:
            out.append("options: " + "; ".join(f"{k}: {va} -> {vb}" for k, va, vb in self.options))
        graph = [f"only in A: {', '.join(self.only_in_a)}"] if self.only_in_a else []
        graph += [f"only in B: {', '.join(self.only_in_b)}"] if self.only_in_b else []
        graph += [f"parents of {job}: {', '.join(pa) or 'none'} -> {', '.join(pb) or 'none'}"
                  for job, pa, pb in self.parents]
        out.append("graph: " + ("; ".join(graph) if graph else "the same job types and edges"))
        changed = [job for job, c in self.code.items() if c.status == "changed"]  # in graph order
        unknown = [job for job, c in self.code.items() if c.status == CODE_UNKNOWN]
        code = [f"changed: {', '.join(changed)}"] if changed else []
        code += [f"{CODE_UNKNOWN}: {', '.join(unknown)}"] if unknown else []
        out.append("code: " + ("; ".join(code) if code else "the same") + "".join(f" ({n})" for n in self.notes))
        return out

    def table(self) -> Table:
        """The per-job table (a :class:`~overseer_nb.display.Table`)."""
        return Table(self.jobs, JobDiff, right_digits=False)

    def __str__(self) -> str:
        parts = ["\n".join(self.lines()), repr(self.table())]
        for c in self.code.values():
            if c.status == "changed" and (c.diff or c.why):
                parts.append(c.diff or f"{c.job}: {c.why}")
        return "\n\n".join(parts)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        lines = "".join(f"<li>{html.escape(line)}</li>" for line in self.lines())
        head = "".join(f"<th>{html.escape(h)}</th>" for h in JobDiff.columns)
        rows = "".join(
            ('<tr style="background:#fff3cd">' if row.changed else "<tr>")
            + "".join(f"<td>{html.escape(str(c))}</td>" for c in row.cells()) + "</tr>"
            for row in self.jobs
        )
        diffs = "".join(
            f"<p><b>{html.escape(c.job)}</b>: handler code changed</p>"
            + (f"<pre>{html.escape(c.diff)}</pre>" if c.diff else f"<p>{html.escape(c.why)}</p>")
            for c in self.code.values() if c.status == "changed" and (c.diff or c.why)
        )
        return (
            f'<div class="overseer-diff"><ul>{lines}</ul><table class="overseer-table"><thead><tr>{head}'
            f"</tr></thead><tbody>{rows}</tbody></table>{diffs}</div>"
        )


def _pair(a: Any, b: Any) -> str:
    if a is None or b is None:
        return "" if a is None and b is None else str(b if a is None else a)
    if a == b:
        return str(a)
    return f"{_NONE if a is None else a} -> {_NONE if b is None else b}"


def _seconds(s: float | None) -> str:
    return "" if s is None else f"{s:.2f} s" if s < 10 else f"{s:.1f} s"


def _change(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return ""
    text = f"{b - a:+.2f} s" if abs(b - a) >= 0.005 else "0.00 s"
    return f"{text} (x{b / a:.2g})" if a >= 0.01 and b >= 0.01 and abs(b / a - 1) >= 0.1 else text


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return clip_end(text, limit)


def _result(rec: Any) -> tuple[str, Any]:
    """A finished job's result summary and what compares it (its pickle), without reading a stored file."""
    if rec.status != FINISHED:
        return (clip_end(str(rec.error), 60) if rec.error is not None and rec.status == "failed" else ""), None
    stored = rec.stored
    if stored is not None:
        return stored.summary or stored.type_name or f"{stored.nbytes:,} bytes", (stored.nbytes, stored.summary)
    data = rec.result_data
    if isinstance(data, (bytes, bytearray)) and len(data) > _PICKLE_SHOWN:
        return f"{len(data):,} bytes", bytes(data)
    try:
        return _short(pickle.loads(data) if data is not None else None), data
    except Exception as exc:
        return f"<cannot be read here: {type(exc).__name__}>", data


def _side(run: Any, job: str) -> JobSide:
    rec = run.jobs[job]
    if not rec.mapped:
        last = rec.attempts[-1] if rec.attempts else None
        summary, token = _result(rec)
        return JobSide(rec.display_state, summary, last.duration if last else None, len(rec.attempts), token=token)
    items = {item.key: item.display_state for item in rec.items}
    starts = [a.start for item in rec.items for a in item.attempts[-1:] if a.start is not None]
    ends = [a.end for item in rec.items for a in item.attempts[-1:] if a.end is not None]
    duration = max(ends) - min(starts) if starts and ends else None
    counts: dict[str, int] = {}
    for state in items.values():
        counts[state] = counts.get(state, 0) + 1
    result = f"{len(items)} items" if rec.status == FINISHED else ""
    state = rec.display_state + (" (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"
                                 if items else "")
    return JobSide(state, result, duration, sum(len(item.attempts) for item in rec.items), items)


def _items_note(a: JobSide, b: JobSide) -> str:
    if a.items is None or b.items is None:
        return ""
    notes = []
    if len(a.items) != len(b.items):
        notes.append(f"{len(a.items)} -> {len(b.items)} items")
    moved = [f"{key}: {a.items[key]} -> {b.items[key]}" for key in a.items
             if key in b.items and a.items[key] != b.items[key]]
    if moved:
        shown = ", ".join(moved[:3])
        notes.append(f"{len(moved)} item{'s' if len(moved) != 1 else ''} differ: {shown}"
                     + (f", ... ({len(moved) - 3} more)" if len(moved) > 3 else ""))
    return "; ".join(notes)


def _code(job: str, code_a: dict, code_b: dict) -> CodeDiff:
    (da, sa), (db, sb) = code_a.get(job, (None, None)), code_b.get(job, (None, None))
    if da is None or db is None:
        side = " and ".join(n for n, d in (("A", da), ("B", db)) if d is None)
        return CodeDiff(job, CODE_UNKNOWN, why=f"no handler code was recorded for it in run {side}")
    if da == db:
        return CodeDiff(job, "same")
    if sa is None or sb is None or sa == sb:
        why = ("its source is not known, but its code digest differs" if sa is None or sb is None
               else "its own source is the same: a function it calls, or a module version, changed")
        return CodeDiff(job, "changed", why=why)
    lines = list(difflib.unified_diff(sa.splitlines(), sb.splitlines(), f"{job} (A)", f"{job} (B)", lineterm="", n=2))
    if len(lines) > _DIFF_LINES:
        lines = lines[:_DIFF_LINES] + [f"[... {len(lines) - _DIFF_LINES} more lines of the diff not shown ...]"]
    return CodeDiff(job, "changed", "\n".join(lines))


def _differing(a: dict[str, Any], b: dict[str, Any]) -> tuple[tuple[str, str, str], ...]:
    found = []
    for key in [*a, *(k for k in b if k not in a)]:
        va, vb = a.get(key, _NONE), b.get(key, _NONE)
        try:
            same = key in a and key in b and bool(va == vb)
        except Exception:  # an array's == is not a bool
            same = _short(va, 200) == _short(vb, 200)
        if not same:
            found.append((str(key), _NONE if key not in a else _short(va), _NONE if key not in b else _short(vb)))
    return tuple(found)


def run_diff(a: Any, b: Any, code_a: dict, code_b: dict, notes: tuple[str, ...] = ()) -> RunDiff:
    """Compare runs ``a`` and ``b``; ``code_a``/``code_b``: job type -> (digest, source) of each run's handlers.

    notes: said after the code line (e.g. that a run's code was read from its handlers as they are now).
    """
    ga, gb = a.graph, b.graph
    order = [*gb.topological_order(), *(j for j in ga.topological_order() if j not in gb)]
    code = {job: _code(job, code_a, code_b) for job in order if job in ga and job in gb}
    rows = []
    for job in order:
        sa = _side(a, job) if job in ga else None
        sb = _side(b, job) if job in gb else None
        if sa is None or sb is None:
            note = "only in A (not in B's graph)" if sb is None else "only in B (not in A's graph)"
            rows.append(JobDiff(job, sa, sb, "", note))
        else:
            rows.append(JobDiff(job, sa, sb, code[job].status, _items_note(sa, sb)))
    ja, jb, wa, wb = ga.to_dict(), gb.to_dict(), ga.to_json(), gb.to_json()  # to_dict: each('grid') as such
    parents = tuple((job, tuple(map(str, ja[job])), tuple(map(str, jb[job]))) for job in order
                    if job in ja and job in jb and wa[job] != wb[job])
    return RunDiff(
        a.run_id, b.run_id, _differing(a.args, b.args), _differing(asdict(a.options), asdict(b.options)),
        tuple(j for j in ga.topological_order() if j not in gb), tuple(j for j in gb.topological_order() if j not in ga),
        parents, code, tuple(rows), notes,
    )
