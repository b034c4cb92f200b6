"""Small tables and lines the magics show: a run's status table, the cluster in use."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Table", "status_table", "retry_text", "cluster_text"]


@dataclass(frozen=True)
class Table:
    """A titled table; plain text in a terminal, HTML in a notebook."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __str__(self) -> str:
        widths = [max(len(r[i]) for r in (self.headers, *self.rows)) for i in range(len(self.headers))]
        lines = [self.title]
        for row in (self.headers, *self.rows):
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows
        )
        return (
            f'<div class="overseer-table"><p>{html.escape(self.title)}</p>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
        )


def status_table(run: Any) -> Table:
    """One row per job of ``run``: job, status, attempts, engine, duration, note.

    The status column shows the stored status, with the display state after
    it when they differ (``unstarted (blocked)``); the note is the job's error
    or message, shortened.
    """
    rows = []
    for job in run.graph.topological_order():
        rec = run.jobs[job]
        status = rec.status if rec.display_state == rec.status else f"{rec.status} ({rec.display_state})"
        last = rec.attempts[-1] if rec.attempts else None
        duration = ""
        if last is not None and last.start is not None:
            seconds = (last.end if last.end is not None else time.time()) - last.start
            duration = f"{seconds:.1f} s" + ("" if last.end is not None else " ...")
        note = str(rec.error) if rec.error is not None else rec.message
        rows.append((
            job,
            status,
            str(len(rec.attempts)),
            "" if rec.engine is None else str(rec.engine),
            duration,
            note if len(note) <= 70 else note[:67] + "...",
        ))
    return Table(run.summary(), ("job", "status", "attempts", "engine", "duration", "note"), tuple(rows))


def retry_text(run: Any, selected: set[str], *, rerun: bool = False, dry_run: bool = False) -> str:
    """The line ``%overseer_retry`` prints: which jobs run again, in graph order."""
    if not selected:
        return f"nothing to retry in run {run.run_id}: no job failed or was aborted"
    jobs = ", ".join(j for j in run.graph.topological_order() if j in selected)
    verb = "rerun" if rerun else "retry"
    if dry_run:
        return f"would {verb} {jobs} (dry run: nothing changed)"
    return f"{'rerunning' if rerun else 'retrying'} {jobs} in run {run.run_id}"


def cluster_text(info: dict[str, Any], default_engines: int) -> str:
    """One line saying which cluster runs jobs, from ``overseer_nb.cluster.describe()``."""
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
    return f"{info['engines']} engines on {kind}{extra}"
