"""The rows of ``ov.runs()`` and ``ov.jobs_with_status()``; the list they come in prints as a table.

Both functions return a :class:`~overseer_nb.display.Table` of these rows
(``Table(rows, RunInfo)``); each row class names its columns and its cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from ..display import Table
from ..states import STATUSES

# Table is the display one, named here for reading.py, which builds the lists
__all__ = ["RunInfo", "JobStatusRow", "Table"]


def _when(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _names(names: list[str], width: int = 40) -> str:
    # cut at a name, not inside one: text.clip_end would leave half a job type
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
    empty: ClassVar[str] = "(no runs)"

    @property
    def jobs(self) -> tuple[str, ...]:
        """The run's job types."""
        return tuple(self.graph)

    def cells(self) -> tuple[Any, ...]:
        """The values of :attr:`columns`, as the table prints them."""
        counts = tuple(self.counts.get(s, 0) for s in STATUSES)
        return (self.run_id, _when(self.created), _when(self.updated), len(self.graph), *counts, _names(list(self.graph)))

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
    empty: ClassVar[str] = "(no jobs)"

    def cells(self) -> tuple[Any, ...]:
        """The values of :attr:`columns`, as the table prints them."""
        return (self.run_id, self.job, self.status, self.attempt, _when(self.updated), self.message[:60])
