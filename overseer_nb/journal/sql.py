"""The journal's SQL: the schema, its migrations, and the statements that write and read runs.

The statements about code (each run's handler code, the cache's lookups by
fingerprint) are in :mod:`.sql_code`; the schema of every table is here.

Each function takes an open ``sqlite3`` connection and is called on the
journal's writer thread inside the transaction :class:`~overseer_nb.journal.file.Journal`
opened for it (``write`` or ``read``). Rows go in and out as plain tuples and
dicts; what they mean is the business of the recorder and the loader.

The schema version is ``PRAGMA user_version``. Each migration moves it up one
version inside one ``BEGIN IMMEDIATE`` transaction, so two processes opening a
new journal at once cannot both apply it. A journal written by a newer
overseer_nb (a higher version) is refused rather than misread.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "MIGRATIONS",
    "NewerSchemaError",
    "configure",
    "migrate",
    "touch",
    "claim_run",
    "write_step",
    "beat",
    "read_run",
    "read_runs",
    "read_job_counts",
    "read_jobs_with_status",
    "read_owner",
    "read_job_states",
    "read_started_jobs",
    "backup_to",
]

# Statements of each migration, in order: MIGRATIONS[0] takes an empty file to
# version 1. Kept as lists because sqlite3's executescript() would commit the
# enclosing transaction. Few indexes and WITHOUT ROWID tables on purpose: every
# b-tree a step touches is one more page written per commit, and a run commits
# once per step.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE info (
            key TEXT PRIMARY KEY,
            value TEXT
        )""",
        # graph: JSON job type -> parent job types; args: the run's args, pickled;
        # options: JSON RunOptions; host/pid: the process that runs it now;
        # active: 1 while that process has work in flight or ready for it.
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            graph TEXT NOT NULL,
            args BLOB,
            args_repr TEXT NOT NULL DEFAULT '',
            options TEXT NOT NULL DEFAULT '{}',
            created REAL NOT NULL,
            updated REAL NOT NULL,
            host TEXT NOT NULL DEFAULT '',
            pid INTEGER,
            active INTEGER NOT NULL DEFAULT 0
        )""",
        # result_note: NULL unless finished; 'stored', or why the result is not stored.
        """CREATE TABLE jobs (
            run_id TEXT NOT NULL,
            job TEXT NOT NULL,
            status TEXT NOT NULL,
            attempt INTEGER NOT NULL DEFAULT 0,
            message TEXT NOT NULL DEFAULT '',
            updated REAL,
            result BLOB,
            result_note TEXT,
            PRIMARY KEY (run_id, job)
        ) WITHOUT ROWID""",
        """CREATE TABLE attempts (
            run_id TEXT NOT NULL,
            job TEXT NOT NULL,
            number INTEGER NOT NULL,
            engine,
            start REAL,
            end REAL,
            outcome TEXT,
            ename TEXT,
            evalue TEXT,
            traceback TEXT,
            stdout TEXT NOT NULL DEFAULT '',
            stderr TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (run_id, job, number)
        ) WITHOUT ROWID""",
        """CREATE TABLE transitions (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL,
            job TEXT NOT NULL,
            old TEXT NOT NULL,
            new TEXT NOT NULL,
            reason TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            at REAL NOT NULL,
            message TEXT NOT NULL DEFAULT ''
        )""",
    ],
    # 2: heartbeat: when the owner (host, pid) last said it is alive; a run of
    # another host whose heartbeat is old may be taken over (its pid says nothing here)
    [
        "ALTER TABLE runs ADD COLUMN heartbeat REAL",
        "UPDATE runs SET heartbeat = updated",
    ],
    # 3: task: the cluster's id of the task that ran an attempt (ipyparallel's msg_id), so
    # a kernel that restarts asks the cluster what became of attempts its predecessor sent
    [
        "ALTER TABLE attempts ADD COLUMN task TEXT",
    ],
    # 4: the cache (SPEC §13): what a job's result depends on (fingerprint, and its parts
    # as JSON, to say what changed), the run it reused a result from, why it ran or was
    # reused, and the length of a result that is a list (what a mapped type maps over)
    [
        "ALTER TABLE jobs ADD COLUMN fingerprint TEXT",
        "ALTER TABLE jobs ADD COLUMN fingerprint_parts TEXT",
        "ALTER TABLE jobs ADD COLUMN cached_from TEXT",
        "ALTER TABLE jobs ADD COLUMN explanation TEXT",
        "ALTER TABLE jobs ADD COLUMN length INTEGER",
        "ALTER TABLE jobs ADD COLUMN item_digests TEXT",
        "CREATE INDEX jobs_by_fingerprint ON jobs (fingerprint) WHERE fingerprint IS NOT NULL",
    ],
    # 5: each run's handler code per job type, as it last started or retried its jobs (ov.diff):
    # digest: of its code (cache.handler_print); source: its text (NULL: not known)
    [
        """CREATE TABLE code (
            run_id TEXT NOT NULL,
            job TEXT NOT NULL,
            digest TEXT,
            source TEXT,
            recorded REAL NOT NULL,
            PRIMARY KEY (run_id, job)
        ) WITHOUT ROWID""",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)


class NewerSchemaError(sqlite3.DatabaseError):
    """The journal was written by a newer overseer_nb."""


def version(conn: sqlite3.Connection) -> int:
    """The schema version of the journal open on ``conn`` (0: empty)."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the journal on ``conn`` (autocommit mode) to :data:`SCHEMA_VERSION`.

    Returns the number of migrations applied (0 when it was current, which
    needs no write, so a read-only journal of the current version opens).
    Raises :class:`NewerSchemaError` for a journal of a newer version.
    """
    applied = 0
    while True:
        current = version(conn)
        if current > SCHEMA_VERSION:
            raise NewerSchemaError(
                f"the journal has schema version {current}, newer than this overseer_nb "
                f"knows ({SCHEMA_VERSION}); upgrade overseer_nb or use another journal file"
            )
        if current == SCHEMA_VERSION:
            return applied
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version(conn) == current:  # no other process migrated meanwhile
                for statement in MIGRATIONS[current]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {current + 1}")
                applied += 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def configure(conn: sqlite3.Connection, *, wal: bool) -> None:
    """Per-connection settings: WAL for a file (durable across process crashes with NORMAL sync)."""
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")


def touch(conn: sqlite3.Connection) -> None:
    """A harmless write: proves the journal takes writes."""
    conn.execute("INSERT OR REPLACE INTO info (key, value) VALUES ('writable', '1')")


# -- writing a run ----------------------------------------------------------------------
_RUN_COLUMNS = "run_id, graph, args, args_repr, options, created, updated, host, pid, active, heartbeat"


def claim_run(
    conn: sqlite3.Connection, row: tuple, jobs: list[tuple], refuse: Callable[[dict[str, Any], dict[str, tuple]], Any]
) -> Any:
    """Make the process of ``row`` (its host, pid) the run's owner unless ``refuse`` says no; one row per job.

    ``row`` is the whole ``runs`` row (``_RUN_COLUMNS``). A new run is
    inserted. For a recorded one, ``refuse(owner, jobs)`` is called with what
    :func:`read_owner` returns and the job rows as they are now (job ->
    (status, attempt)); if it returns anything but None, nothing is written and
    that is returned. Reading, deciding and writing happen in the caller's one
    ``BEGIN IMMEDIATE`` transaction, so of two processes claiming a run at once
    the second sees the first's claim.
    """
    run_id = row[0]
    owner = read_owner(conn, run_id)
    if owner is None:
        conn.execute(f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    else:
        refused = refuse(owner, read_job_states(conn, run_id))
        if refused is not None:
            return refused
        updated, host, pid, active, heartbeat = row[6:]
        conn.execute(
            "UPDATE runs SET updated = ?, host = ?, pid = ?, active = ?, heartbeat = ? WHERE run_id = ?",
            (updated, host, pid, active, heartbeat, run_id),
        )
    conn.executemany(
        "INSERT OR IGNORE INTO jobs (run_id, job, status, attempt, updated) VALUES (?, ?, ?, ?, ?)", jobs
    )
    return None


def write_step(
    conn: sqlite3.Connection, run_id: str, owner: tuple[str, int], at: float, active: bool | None,
    transitions: list, jobs: list, attempts: list, removed: list | None = None, added: list | None = None,
) -> dict[str, Any] | None:
    """One step: its transitions, the rows of the jobs and attempts they touch; ``active``: None if unchanged.

    removed: items of mapped job types forgotten (their type maps anew), as
    (run_id, job) rows; added: items now known, as ``jobs`` rows. Written only
    while ``owner`` (host, pid) owns the run; else nothing is written and the
    owner that took it over is returned (None: written).
    """
    found = conn.execute("SELECT host, pid FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if found is not None and tuple(found) != tuple(owner):
        return read_owner(conn, run_id)
    if removed:
        conn.executemany("DELETE FROM attempts WHERE run_id = ? AND job = ?", removed)
        conn.executemany("DELETE FROM jobs WHERE run_id = ? AND job = ?", removed)
    conn.executemany(
        "INSERT INTO transitions (run_id, job, old, new, reason, attempt, at, message)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        transitions,
    )
    upsert = (
        "INSERT INTO jobs (status, attempt, message, updated, result, result_note, fingerprint, fingerprint_parts,"
        " cached_from, explanation, length, item_digests, run_id, job) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (run_id, job) DO UPDATE SET status = excluded.status,"
        " attempt = excluded.attempt, message = excluded.message, updated = excluded.updated,"
        " result = excluded.result, result_note = excluded.result_note, fingerprint = excluded.fingerprint,"
        " fingerprint_parts = excluded.fingerprint_parts, cached_from = excluded.cached_from,"
        " explanation = excluded.explanation, length = excluded.length, item_digests = excluded.item_digests"
    )
    if added:
        conn.executemany(upsert, added)
    conn.executemany(upsert, jobs)
    conn.executemany(
        "INSERT INTO attempts (run_id, job, number, engine, start, end, outcome, ename, evalue,"
        " traceback, stdout, stderr, task) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (run_id, job, number) DO UPDATE SET engine = excluded.engine,"
        " start = excluded.start, end = excluded.end, outcome = excluded.outcome,"
        " ename = excluded.ename, evalue = excluded.evalue, traceback = excluded.traceback,"
        " stdout = excluded.stdout, stderr = excluded.stderr, task = excluded.task",
        attempts,
    )
    if active is not None:  # rarely: the runs row is one more page to write per commit
        conn.execute(
            "UPDATE runs SET updated = ?, active = ?, heartbeat = ? WHERE run_id = ?", (at, int(active), at, run_id)
        )
    return None


def beat(conn: sqlite3.Connection, owner: tuple[str, int], at: float) -> None:
    """The heartbeat of every run in progress that ``owner`` (host, pid) owns."""
    conn.execute("UPDATE runs SET heartbeat = ? WHERE host = ? AND pid = ? AND active = 1", (at, *owner))


# -- reading ------------------------------------------------------------------------------
def read_run(conn: sqlite3.Connection, run_id: str) -> tuple[dict, list[dict], list[dict]] | str:
    """The run ``run_id`` (or the one run whose id starts so): its row, job rows, attempt rows.

    Returns a message naming the problem instead when no run, or several, match.
    """
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


def read_runs(conn: sqlite3.Connection, limit: int | None) -> list[tuple]:
    """The newest ``limit`` runs (all if None): run_id, graph, created, updated, args_repr, host, pid."""
    return conn.execute(
        "SELECT run_id, graph, created, updated, args_repr, host, pid FROM runs"
        " ORDER BY created DESC, run_id DESC LIMIT ?",
        (-1 if limit is None else int(limit),),
    ).fetchall()


def read_job_counts(conn: sqlite3.Connection, limit: int | None) -> list[tuple]:
    """Of the newest ``limit`` runs: (run_id, status, number of jobs, latest update) per status."""
    newest = "SELECT run_id FROM runs ORDER BY created DESC, run_id DESC LIMIT ?"
    return conn.execute(
        f"SELECT run_id, status, count(*), max(updated) FROM jobs WHERE run_id IN ({newest})"
        " GROUP BY run_id, status",
        (-1 if limit is None else int(limit),),
    ).fetchall()


def read_jobs_with_status(conn: sqlite3.Connection, status: str, run_id: str | None) -> list[tuple]:
    """Jobs with ``status`` (of one run or all), most recently changed first."""
    sql = "SELECT run_id, job, status, attempt, updated, message FROM jobs WHERE status = ?"
    params: tuple = (status,)
    if run_id is not None:
        sql, params = sql + " AND run_id = ?", (status, run_id)
    return conn.execute(sql + " ORDER BY updated DESC, run_id DESC, job", params).fetchall()


def read_owner(conn: sqlite3.Connection, run_id: str) -> dict[str, Any] | None:
    """Who runs ``run_id`` as the journal has it: host, pid, active, heartbeat; None for an unknown run."""
    row = conn.execute("SELECT host, pid, active, heartbeat FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else {"host": row[0], "pid": row[1], "active": row[2], "heartbeat": row[3]}


def read_job_states(conn: sqlite3.Connection, run_id: str) -> dict[str, tuple[str, int]]:
    """Job -> (status, attempt) of the jobs of ``run_id`` as recorded."""
    rows = conn.execute("SELECT job, status, attempt FROM jobs WHERE run_id = ?", (run_id,))
    return {job: (status, attempt) for job, status, attempt in rows}


def read_started_jobs(conn: sqlite3.Connection, run_id: str) -> list[tuple[str, int]]:
    """(job, attempt) of the jobs of ``run_id`` recorded as started."""
    return conn.execute("SELECT job, attempt FROM jobs WHERE run_id = ? AND status = 'started'", (run_id,)).fetchall()


# -- backups ------------------------------------------------------------------------------
def backup_to(conn: sqlite3.Connection, path: str) -> None:
    """Copy the journal into the file ``path`` with SQLite's backup API (created user-only)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    dest = sqlite3.connect(path)
    try:
        conn.backup(dest)
    finally:
        dest.close()
