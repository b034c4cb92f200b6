"""What ``ov.runs()`` and ``ov.jobs_with_status()`` return: small rows, a list that prints as a table."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from ..states import STATUSES

__all__ = ["RunInfo", "JobStatusRow", "Table"]


def _when(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _short(names: list[str], width: int = 40) -> str:
    text = ", ".join(names)
    if len(text) <= width:
        return text
    return text[: width - 4].rsplit(",", 1)[0] + ", ..."


@dataclass(frozen=True)
class RunInfo:
    """One run in the journal: what ``ov.runs()`` lists.

    graph: job type -> parent job types (``ov.run`` takes it as is).
    created, updated: seconds since the epoch (the last recorded change).
    counts: stored status -> number of jobs.
    """

    run_id: str
    graph: dict[str, list[str]]
    created: float
    updated: float
    counts: dict[str, int] = field(default_factory=dict)
    args: str = ""
    host: str = ""
    pid: int | None = None

    columns: ClassVar[tuple[str, ...]] = ("run id", "created", "updated", "jobs", *STATUSES, "graph")

    @property
    def jobs(self) -> tuple[str, ...]:
        """The run's job types."""
        return tuple(self.graph)

    def cells(self) -> tuple[Any, ...]:
        counts = tuple(self.counts.get(s, 0) for s in STATUSES)
        return (self.run_id, _when(self.created), _when(self.updated), len(self.graph), *counts, _short(list(self.graph)))

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in self.counts.items() if n)
        return f"<RunInfo {self.run_id} created {_when(self.created)}: {len(self.graph)} jobs ({counts})>"


@dataclass(frozen=True)
class JobStatusRow:
    """One job of one run with its recorded status: what ``ov.jobs_with_status()`` lists."""

    run_id: str
    job: str
    status: str
    attempt: int
    updated: float | None
    message: str = ""

    columns: ClassVar[tuple[str, ...]] = ("run id", "job", "status", "attempt", "updated", "message")

    def cells(self) -> tuple[Any, ...]:
        return (self.run_id, self.job, self.status, self.attempt, _when(self.updated), self.message[:60])


class Table(list):
    """A list of rows that prints as an aligned table (and as HTML in a notebook)."""

    def __init__(self, rows: list, row_type: type):
        super().__init__(rows)
        self.row_type = row_type

    def __repr__(self) -> str:
        if not self:
            return f"(no {'runs' if self.row_type is RunInfo else 'jobs'})"
        header = self.row_type.columns
        body = [tuple(str(c) for c in row.cells()) for row in self]
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(
                c.rjust(w) if isinstance(c, str) and c.isdigit() else c.ljust(w) for c, w in zip(cells, widths, strict=True)
            ).rstrip()

        return "\n".join([line(header)] + [line(r) for r in body])

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.row_type.columns)
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row.cells()) + "</tr>" for row in self
        )
        return f'<table class="overseer-table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
