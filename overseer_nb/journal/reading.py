"""The run journal: every run's transitions, attempts and results in SQLite.

``ov.run`` attaches the journal to each run before it starts (``journal=False``
turns it off). After a kernel restart, :func:`runs` lists past runs,
:func:`load_run` gives one back as a :class:`~overseer_nb.run.Run` with its last
recorded states, and ``run.resume(handlers)`` runs what did not finish.
Where the journal lives: see :func:`journal_location`; docs/journal.md.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sqlite3
import weakref
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from ..errors import JournalError, RunError
from ..execution.seam import Executor
from ..graph import JobGraph
from ..machine import RunMachine
from ..options import RunOptions
from ..records import Attempt, ErrorInfo
from ..running import Run
from ..states import FINISHED, STARTED, STATUSES
from .file import Journal, journal_location, open_journal
from .recorder import NOT_STORED_BYTES, STORED, Recorder
from .tables import JobStatusRow, RunInfo, Table

__all__ = [
    "runs",
    "load_run",
    "jobs_with_status",
    "backup",
    "attach",
    "journal_location",
    "RunInfo",
    "JobStatusRow",
    "Journal",
]

# Runs this process journals, by (journal path, run id): load_run returns the
# live one, and resume refuses to start a second copy of it.
_live: weakref.WeakValueDictionary[tuple[str, str], Run] = weakref.WeakValueDictionary()

_LOST = ErrorInfo(
    "KernelLost",
    "the process running this run stopped while this attempt ran; resume runs the job again",
)


def attach(run: Run, journal: Any = None) -> Journal | None:
    """Journal ``run`` from now on (before ``run.start()``); return the journal, or None if off.

    Writes the run's row and subscribes a critical recorder. Raises
    :class:`~overseer_nb.errors.JournalError` if the journal cannot be written.
    """
    j = open_journal(journal)
    if j is None:
        return None
    recorder = getattr(run, "_journal_recorder", None)
    if recorder is None or recorder.journal is not j:
        from ..config import defaults

        cfg = defaults()
        recorder = Recorder(
            j, run, max_result_bytes=cfg.journal_max_result_bytes, max_output_chars=cfg.journal_max_output_chars
        )
        recorder.register(run)
        run.subscribe(recorder, critical=True)
        run._journal_recorder = recorder  # type: ignore[attr-defined]
    else:
        recorder.register(run)  # this process owns it now
    _live[(j.path, run.run_id)] = run
    return j


def _reader(journal: Any) -> Journal:
    if journal is False:
        raise JournalError("there is no journal to read with journal=False; give a path or leave it out")
    j = open_journal(journal)
    assert j is not None
    return j


# -- listing ----------------------------------------------------------------------
def runs(journal: Any = None, *, limit: int | None = None) -> Table:
    """Past and present runs in the journal, newest first.

    Each is a :class:`RunInfo` (run id, graph, created, updated, counts per
    status); the list's repr is a table. ``journal``: see :func:`journal_location`.
    """
    return Table(_reader(journal).read(_read_runs, limit), RunInfo)


def _read_runs(conn: sqlite3.Connection, limit: int | None) -> list[RunInfo]:
    newest = "SELECT run_id FROM runs ORDER BY created DESC, run_id DESC LIMIT ?"
    bound = -1 if limit is None else int(limit)
    counts: dict[str, dict[str, int]] = {}
    latest: dict[str, float] = {}
    for run_id, status, n, updated in conn.execute(
        f"SELECT run_id, status, count(*), max(updated) FROM jobs WHERE run_id IN ({newest})"
        " GROUP BY run_id, status",
        (bound,),
    ):
        counts.setdefault(run_id, {})[status] = n
        latest[run_id] = max(latest.get(run_id, 0.0), updated or 0.0)
    rows = conn.execute(
        "SELECT run_id, graph, created, updated, args_repr, host, pid FROM runs"
        " ORDER BY created DESC, run_id DESC LIMIT ?",
        (bound,),
    ).fetchall()
    return [
        RunInfo(
            rid, json.loads(graph), created, max(updated, latest.get(rid, 0.0)),
            {s: counts.get(rid, {}).get(s, 0) for s in STATUSES}, args, host, pid,
        )
        for rid, graph, created, updated, args, host, pid in rows
    ]


def jobs_with_status(status: str, run_id: str | None = None, journal: Any = None) -> Table:
    """Jobs whose recorded status is ``status`` (of one run, or of all), most recently changed first.

    Like Overseer's monitoring query. Each is a :class:`JobStatusRow`.
    Raises ``ValueError`` for a status that is not one of the five stored ones.
    """
    if status not in STATUSES:
        raise ValueError(
            f"status must be one of {', '.join(STATUSES)}, got {status!r} (display states "
            "such as 'blocked' are derived, not stored)"
        )
    if isinstance(run_id, RunInfo):
        run_id = run_id.run_id
    rows = _reader(journal).read(_read_jobs_with_status, status, run_id)
    return Table([JobStatusRow(*row) for row in rows], JobStatusRow)


def _read_jobs_with_status(conn: sqlite3.Connection, status: str, run_id: str | None) -> list[tuple]:
    sql = "SELECT run_id, job, status, attempt, updated, message FROM jobs WHERE status = ?"
    params: tuple = (status,)
    if run_id is not None:
        sql, params = sql + " AND run_id = ?", (status, run_id)
    return conn.execute(sql + " ORDER BY updated DESC, run_id DESC, job", params).fetchall()


# -- loading ----------------------------------------------------------------------
class _Detached(Executor):
    """The executor of a run loaded from the journal: it has no cluster until resumed."""

    def submit(self, task: Any) -> None:
        raise RunError(
            "this run was loaded from the journal and has no cluster; "
            "run.resume(handlers) runs what did not finish"
        )

    def describe(self) -> str:
        return "none (loaded from the journal; run.resume(handlers) runs it)"


def load_run(run_id: str | RunInfo, journal: Any = None) -> Run:
    """The run ``run_id`` (or a unique prefix of it) as the journal last recorded it.

    Jobs recorded ``started`` show ``unstarted`` (their attempt was lost with its
    kernel). A run still going on in this process is returned as it is.
    ``run.resume(handlers)`` runs what did not finish. Starts no cluster.
    Raises :class:`~overseer_nb.errors.RunError` for an unknown run id.
    """
    if isinstance(run_id, RunInfo):
        run_id = run_id.run_id
    j = _reader(journal)
    found = j.read(_read_run, str(run_id))
    if isinstance(found, str):
        raise RunError(found)
    row, job_rows, attempt_rows = found
    live = _live.get((j.path, row["run_id"]))
    if live is not None:
        return live
    return _build(j, row, job_rows, attempt_rows)


def _read_run(conn: sqlite3.Connection, run_id: str) -> tuple | str:
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            escaped = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            like = conn.execute(
                "SELECT * FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY created DESC LIMIT 6", (escaped + "%",)
            ).fetchall()
            if len(like) != 1:
                return _unknown(conn, run_id, [r["run_id"] for r in like])
            row = like[0]
        rid = row["run_id"]
        jobs = conn.execute("SELECT * FROM jobs WHERE run_id = ?", (rid,)).fetchall()
        attempts = conn.execute("SELECT * FROM attempts WHERE run_id = ? ORDER BY job, number", (rid,)).fetchall()
        return dict(row), [dict(r) for r in jobs], [dict(r) for r in attempts]
    finally:
        conn.row_factory = None


def _unknown(conn: sqlite3.Connection, run_id: str, matches: list[str]) -> str:
    if matches:
        return f"run id {run_id!r} is ambiguous: it starts {', '.join(matches)}; give more of it"
    recent = [r[0] for r in conn.execute("SELECT run_id FROM runs ORDER BY created DESC LIMIT 3")]
    hint = f"; the newest are {', '.join(recent)}" if recent else "; the journal holds no runs yet"
    return f"no run {run_id!r} in the journal{hint}. ov.runs() lists them all."


def _build(j: Journal, row: dict, job_rows: list[dict], attempt_rows: list[dict]) -> Run:
    graph = JobGraph(json.loads(row["graph"]))
    known = {f.name for f in fields(RunOptions)}
    options = RunOptions(**{k: v for k, v in json.loads(row["options"]).items() if k in known})
    notes = []
    try:
        args = pickle.loads(row["args"]) if row["args"] is not None else {}
    except Exception as exc:
        args = {}
        notes.append(f"its args cannot be read here ({exc}); jobs still get the original ones")
    owner_alive = bool(row["active"]) and _owner_alive(row)
    attempts: dict[str, list[Attempt]] = {}
    for a in attempt_rows:
        error = ErrorInfo(a["ename"], a["evalue"] or "", a["traceback"] or "") if a["ename"] is not None else None
        attempts.setdefault(a["job"], []).append(
            Attempt(a["number"], a["engine"], a["start"], a["end"], a["stdout"], a["stderr"], error, a["outcome"])
        )
    machine = RunMachine(graph, options)
    for jr in job_rows:
        job, status = jr["job"], jr["status"]
        if job not in graph:
            continue
        mine = attempts.get(job, [])
        if status == STARTED and not owner_alive and mine and mine[-1].outcome is None:
            mine[-1].outcome, mine[-1].error = "lost", _LOST
        result, message = None, jr["message"]
        if status == FINISHED:
            result = jr["result"] if jr["result_note"] == STORED else NOT_STORED_BYTES
            if jr["result_note"] != STORED:
                message = message or f"result not stored in the journal: {jr['result_note']}"
        machine.restore(job, status, mine, result, message)
    machine.finish_restore()
    run = Run(graph, {}, _Detached(), args=args, options=options, run_id=row["run_id"], machine=machine)
    if row["args"] is not None:
        run._args_blob = row["args"]
    run.created = row["created"]
    run.ended = None if owner_alive else max([row["updated"]] + [jr["updated"] or 0.0 for jr in job_rows])
    run._journal_owner = (row["host"], row["pid"])  # type: ignore[attr-defined]
    run._journal_loaded = j  # type: ignore[attr-defined]
    if owner_alive:
        notes.insert(0, f"process {row['pid']} on this machine is still running it; this is its state when loaded")
    else:
        notes.insert(0, "loaded from the journal; run.resume(handlers) runs what did not finish")
    run.message = "; ".join(notes)
    return run


def _owner_alive(row: Mapping[str, Any]) -> bool:
    """True if the process recorded as running the run is alive on this machine."""
    pid = row.get("pid")
    if not pid or row.get("host") != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped still has a pid
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:
        return True


# -- backups ---------------------------------------------------------------------------
def backup(target: str | os.PathLike, journal: Any = None) -> str:
    """Copy the journal to the file ``target`` with SQLite's backup API; return its path.

    Safe while runs write (never copy the file itself: a copy taken mid-write,
    or without its -wal file, can be corrupt or stale). ``target`` is created
    readable by its owner only.
    """
    j = _reader(journal)
    path = os.path.abspath(os.path.expanduser(os.fspath(target)))
    if path == j.path:
        raise JournalError(f"the backup target {path} is the journal itself; give another file")
    j.call(_backup, path)
    return path


def _backup(conn: sqlite3.Connection, path: str) -> None:
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    dest = sqlite3.connect(path)
    try:
        conn.backup(dest)
    finally:
        dest.close()
