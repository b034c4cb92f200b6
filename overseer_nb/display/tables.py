"""Tables and lines shown to a user: the one table class, a run's status table, retry and cluster lines.

:class:`Table` is a list of rows that prints as an aligned table in a terminal
and as HTML in a notebook; ``%overseer_status``, ``ov.runs()`` and
``ov.jobs_with_status()`` all return one.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from ..text import clip_end

__all__ = ["Table", "JobRow", "status_table", "retry_text", "cluster_text"]


class Table(list):
    """A list of rows that prints as an aligned table, and as HTML in a notebook.

    rows: the items; each row's ``cells()`` gives its column values.
    row_type: the rows' class; its ``columns`` (a tuple of names) head the table and
    its ``empty`` is printed for a table with no rows ("" prints the header alone).
    title: a line above the table ("" for none).
    right_digits: right-align the cells that are all digits (counts line up).
    """

    def __init__(self, rows: Iterable[Any], row_type: type, *, title: str = "", right_digits: bool = True):
        super().__init__(rows)
        self.row_type = row_type
        self.title = title
        self.right_digits = right_digits

    def __repr__(self) -> str:
        if not self and self.row_type.empty:
            return self.row_type.empty
        header = tuple(self.row_type.columns)
        body = [tuple(str(c) for c in row.cells()) for row in self]
        widths = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(header)]

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(
                c.rjust(w) if self.right_digits and c.isdigit() else c.ljust(w)
                for c, w in zip(cells, widths, strict=True)
            ).rstrip()

        return "\n".join(([self.title] if self.title else []) + [line(header)] + [line(r) for r in body])

    __str__ = __repr__

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.row_type.columns)
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row.cells()) + "</tr>" for row in self
        )
        if not self.title:
            return f'<table class="overseer-table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        return (
            f'<div class="overseer-table"><p>{html.escape(self.title)}</p>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
        )


@dataclass(frozen=True)
class JobRow:
    """One job of a run as ``%overseer_status`` shows it; every field is display text."""

    job: str
    status: str
    attempts: str
    engine: str
    duration: str
    note: str

    columns: ClassVar[tuple[str, ...]] = ("job", "status", "attempts", "engine", "duration", "note")
    empty: ClassVar[str] = ""

    def cells(self) -> tuple[str, ...]:
        return (self.job, self.status, self.attempts, self.engine, self.duration, self.note)


def status_table(run: Any, items: str | None = None) -> Table:
    """One :class:`JobRow` per job type of ``run``, in graph order, under the run's summary line.

    The status column shows the stored status, with the display state after
    it when they differ (``unstarted (blocked)``); the note is the job's error
    or message, shortened. A mapped type is one row counting its items by
    state; ``items``: one row per item of that mapped type instead.
    """
    rows = []
    if items is not None:
        rec = run.jobs[items] if items in run.jobs else None
        if rec is None or not rec.mapped:
            mapped = ", ".join(j for j in run.graph if run.jobs[j].mapped) or "none"
            raise KeyError(f"{items!r} is not a mapped job type of this run (mapped types: {mapped})")
        keys = [item.key for item in rec.items]
    else:
        keys = list(run.graph.topological_order())
    for job in keys:
        rec = run.jobs[job]
        status = rec.status if rec.display_state == rec.status else f"{rec.status} ({rec.display_state})"
        if rec.mapped:
            rows.append(JobRow(job, status, "", "", "", _item_counts(rec)))
            continue
        last = rec.attempts[-1] if rec.attempts else None
        duration = ""
        if last is not None and last.start is not None:
            seconds = (last.end if last.end is not None else time.time()) - last.start
            duration = f"{seconds:.1f} s" + ("" if last.end is not None else " ...")
        note = str(rec.error) if rec.error is not None else rec.message
        if not note and rec.status == "unstarted" and hasattr(run, "why"):
            note = run.why(job)  # what it waits for
        if not note and rec.stored is not None:  # a result in the store: its summary, not its value
            note = f"{rec.stored.summary or rec.stored.type_name}, {rec.stored.nbytes / 2**20:,.1f} MiB in store"
        engine = "" if rec.engine is None else str(rec.engine)
        rows.append(JobRow(job, status, str(len(rec.attempts)), engine, duration, clip_end(note, 70)))
    return Table(rows, JobRow, title=run.summary(), right_digits=False)


def _item_counts(rec: Any) -> str:
    if not rec.items:
        return rec.message or ("no items" if rec.status == "finished" else "items not known yet")
    counts: dict[str, int] = {}
    for item in rec.items:
        counts[item.display_state] = counts.get(item.display_state, 0) + 1
    done = counts.get("finished", 0)
    rest = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()) if state != "finished")
    return f"{done}/{len(rec.items)} items finished" + (f"; {rest}" if rest else "")


def retry_text(run: Any, selected: set[str], *, rerun: bool = False, dry_run: bool = False) -> str:
    """The line ``%overseer_retry`` prints: which jobs run again, in graph order."""
    if not selected:
        return f"nothing to retry in run {run.run_id}: no job failed or was aborted"
    jobs = ", ".join(j for j in run.machine.topo.keys() if j in selected)  # items by name, in order
    verb = "rerun" if rerun else "retry"
    if dry_run:
        return f"would {verb} {jobs} (dry run: nothing changed)"
    return f"{'rerunning' if rerun else 'retrying'} {jobs} in run {run.run_id}"


def cluster_text(info: dict[str, Any], default_engines: int) -> str:
    """One line saying which cluster runs jobs, from ``overseer_nb.execution.describe()``."""
    if not info.get("connected"):
        return (
            f"no cluster yet: the first run starts a local cluster of {default_engines} engines "
            "(%config Overseer.engines = N to change; %overseer_cluster --profile P to use another)"
        )
    kind = "a local cluster started by overseer_nb" if info.get("owned") else "a cluster overseer_nb connected to"
    where = [f"controller {info['controller']}"] if info.get("controller") else []
    where += [f"profile {info['profile']!r}"] if info.get("profile") else []
    where += [f"cluster id {info['cluster_id']!r}"] if info.get("cluster_id") else []
    extra = f" ({', '.join(where)})" if where else ""
    text = f"{info['engines']} engines on {kind}{extra}"
    if "store" in info:
        problem = info.get("store_problem")
        text += (f"; results stay in the store {info['store']} (every engine shares it)" if problem is None
                 else f"; results are relayed through the kernel: {problem}")
    return text
