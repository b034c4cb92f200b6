"""What the journal holds, as tables: ``ov.runs()``, ``ov.jobs_with_status()``; and backups."""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

from ..errors import JournalError, OptionError
from ..states import STATUSES
from . import sql
from .loading import reader
from .tables import JobStatusRow, RunInfo, Table

__all__ = ["runs", "jobs_with_status", "backup"]


def runs(journal: Any = None, *, limit: int | None = None) -> Table:
    """Past and present runs in the journal, newest first.

    Each is a :class:`RunInfo` (run id, graph, created, updated, counts per
    status); the list's repr is a table. ``journal``: see
    :func:`~overseer_nb.journal.file.journal_location`.
    """
    return Table(reader(journal).read(_run_infos, limit), RunInfo)


def _run_infos(conn: sqlite3.Connection, limit: int | None) -> list[RunInfo]:
    # both queries in one read transaction: counts and rows of the same moment
    counts: dict[str, dict[str, int]] = {}
    latest: dict[str, float] = {}
    for run_id, status, n, updated in sql.read_job_counts(conn, limit):
        counts.setdefault(run_id, {})[status] = n
        latest[run_id] = max(latest.get(run_id, 0.0), updated or 0.0)
    return [
        RunInfo(
            rid, json.loads(graph), created, max(updated, latest.get(rid, 0.0)),
            {s: counts.get(rid, {}).get(s, 0) for s in STATUSES}, args, host, pid,
        )
        for rid, graph, created, updated, args, host, pid in sql.read_runs(conn, limit)
    ]


def jobs_with_status(status: str, run_id: str | None = None, journal: Any = None) -> Table:
    """Jobs whose recorded status is ``status`` (of one run, or of all), most recently changed first.

    Like Overseer's monitoring query. Each is a :class:`JobStatusRow`. Raises
    :class:`~overseer_nb.errors.OptionError` for a status that is not one of the
    five stored ones.
    """
    if status not in STATUSES:
        raise OptionError(
            f"status must be one of {', '.join(STATUSES)}, got {status!r} (display states "
            "such as 'blocked' are derived, not stored)"
        )
    run_id = getattr(run_id, "run_id", run_id)  # a RunInfo row of ov.runs()
    rows = reader(journal).read(sql.read_jobs_with_status, status, run_id)
    return Table([JobStatusRow(*row) for row in rows], JobStatusRow)


def backup(target: str | os.PathLike, journal: Any = None) -> str:
    """Copy the journal to the file ``target`` with SQLite's backup API; return its path.

    Safe while runs write (never copy the file itself: a copy taken mid-write,
    or without its -wal file, can be corrupt or stale). ``target`` is created
    readable by its owner only.
    """
    j = reader(journal)
    path = os.path.abspath(os.path.expanduser(os.fspath(target)))
    if path == j.path:
        raise JournalError(f"the backup target {path} is the journal itself; give another file")
    j.call(sql.backup_to, path)
    return path
