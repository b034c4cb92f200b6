"""Writing a run into the journal: its row, then one transaction per step.

:class:`Recorder` is the run's critical subscriber. On the run's loop thread it
turns the step into plain rows (reading the live records there, where they
cannot change underfoot), hands them to the journal's writer thread and waits
for the commit; if the commit fails it raises, and the run holds.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..errors import JournalError
from ..records import NOT_STORED_BYTES, Attempt
from ..states import FINISHED
from .file import Journal

if TYPE_CHECKING:
    from ..machine import Step
    from ..running import Run

__all__ = ["Recorder", "NOT_STORED_BYTES", "cap_text", "engine_value", "run_row"]

STORED = "stored"


def cap_text(text: str, limit: int) -> str:
    """``text``, or its first and last ``limit // 2`` characters with a marker between."""
    if not text or len(text) <= limit:
        return text or ""
    half = limit // 2
    left_out = len(text) - 2 * half
    return f"{text[:half]}\n[... {left_out} characters not stored in the journal ...]\n{text[len(text) - half:]}"


def engine_value(engine: Any) -> Any:
    """An engine id as SQLite keeps it: ints and strings as they are, anything else as text."""
    if engine is None or isinstance(engine, (int, str)) and not isinstance(engine, bool):
        return engine
    return str(engine)


def run_row(run: Run) -> tuple:
    """The ``runs`` row of ``run`` (its owner: this process)."""
    try:
        args_repr = repr(run.args)
    except Exception:
        args_repr = "<args>"
    if len(args_repr) > 200:
        args_repr = args_repr[:197] + "..."
    return (
        run.run_id,
        json.dumps(run.graph.to_dict()),
        run._args_blob,
        args_repr,
        json.dumps(asdict(run.options)),
        run.created,
        time.time(),
        socket.gethostname(),
        os.getpid(),
        1,
    )


def _insert_run(conn: sqlite3.Connection, row: tuple, jobs: list[tuple]) -> None:
    conn.execute(
        "INSERT INTO runs (run_id, graph, args, args_repr, options, created, updated, host, pid, active)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (run_id) DO UPDATE SET updated = excluded.updated,"
        " host = excluded.host, pid = excluded.pid, active = excluded.active",
        row,
    )
    conn.executemany(
        "INSERT OR IGNORE INTO jobs (run_id, job, status, attempt, updated) VALUES (?, ?, ?, ?, ?)", jobs
    )


def _write_step(
    conn: sqlite3.Connection, run_id: str, at: float, active: bool | None, transitions: list, jobs: list, attempts: list
) -> None:
    """One step: its transitions, the rows of the jobs and attempts they touch; ``active``: None if unchanged."""
    conn.executemany(
        "INSERT INTO transitions (run_id, job, old, new, reason, attempt, at, message)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        transitions,
    )
    conn.executemany(
        "UPDATE jobs SET status = ?, attempt = ?, message = ?, updated = ?, result = ?, result_note = ?"
        " WHERE run_id = ? AND job = ?",
        jobs,
    )
    conn.executemany(
        "INSERT INTO attempts (run_id, job, number, engine, start, end, outcome, ename, evalue,"
        " traceback, stdout, stderr) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (run_id, job, number) DO UPDATE SET engine = excluded.engine,"
        " start = excluded.start, end = excluded.end, outcome = excluded.outcome,"
        " ename = excluded.ename, evalue = excluded.evalue, traceback = excluded.traceback,"
        " stdout = excluded.stdout, stderr = excluded.stderr",
        attempts,
    )
    if active is not None:  # rarely: the runs row is one more page to write per commit
        conn.execute("UPDATE runs SET updated = ?, active = ? WHERE run_id = ?", (at, int(active), run_id))


class Recorder:
    """The critical subscriber that writes every step of one run to ``journal``."""

    def __init__(self, journal: Journal, run: Run, *, max_result_bytes: int, max_output_chars: int):
        self.journal = journal
        self.run_id = run.run_id
        self.max_result_bytes = max_result_bytes
        self.max_output_chars = max_output_chars
        self.failed: JournalError | None = None  # the last write's error, None once one succeeds
        self.active = True  # as the runs row has it

    def register(self, run: Run) -> None:
        """Write (or take over) the run's row and one row per job; raises JournalError."""
        jobs = [(run.run_id, job, rec.status, len(rec.attempts), run.created) for job, rec in run.jobs.items()]
        self.journal.write(_insert_run, run_row(run), jobs)
        self.active = True

    def __call__(self, run: Run, step: Step) -> None:
        if not step.transitions:
            return  # display-only changes are derived from stored statuses
        rid = self.run_id
        transitions = []
        last: dict[str, Any] = {}  # job -> its last transition in this step
        numbers: dict[str, set[int]] = {}
        for t in step.transitions:
            transitions.append((rid, t.job, t.old, t.new, t.reason, t.attempt, t.at, t.message))
            last[t.job] = t
            numbers.setdefault(t.job, set()).add(t.attempt)
        jobs, attempts = [], []
        for job, t in last.items():
            rec = run.jobs[job]
            result, note = self._result(rec.result_bytes) if t.new == FINISHED else (None, None)
            jobs.append((t.new, t.attempt, t.message, t.at, result, note, rid, job))
            for attempt in rec.attempts:
                if attempt.number in numbers[job]:
                    attempts.append(self.attempt_row(job, attempt))
        # the machine has applied the step already: idle now means the run has
        # nothing left to do, so another process may resume it
        active = not run.machine.is_idle()
        changed = active if active != self.active else None
        try:
            self.journal.write(_write_step, rid, step.transitions[-1].at, changed, transitions, jobs, attempts)
        except JournalError as exc:
            self.failed = exc
            raise
        self.failed, self.active = None, active

    def attempt_row(self, job: str, a: Attempt) -> tuple:
        """The ``attempts`` row of attempt ``a`` of ``job``."""
        err = a.error
        cap = self.max_output_chars
        return (
            self.run_id, job, a.number, engine_value(a.engine), a.start, a.end, a.outcome,
            err.ename if err else None, err.evalue if err else None, err.traceback if err else None,
            cap_text(a.stdout, cap), cap_text(a.stderr, cap),
        )

    def _result(self, blob: bytes | None) -> tuple[bytes | None, str]:
        if blob is None:
            return None, "no result was sent back"
        if not isinstance(blob, bytes):
            return None, f"the result came back as {type(blob).__name__}, not pickled bytes"
        if len(blob) > self.max_result_bytes:
            return None, (
                f"{len(blob)} bytes, over the journal's cap of {self.max_result_bytes} "
                "(c.Overseer.journal_max_result_bytes)"
            )
        return blob, STORED
