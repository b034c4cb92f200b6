"""The journal's SQLite schema and its migrations, keyed by ``PRAGMA user_version``.

Each migration moves the schema up one version inside one ``BEGIN IMMEDIATE``
transaction, so two processes opening a new journal at once cannot both apply
it. A journal written by a newer overseer_nb (a higher version) is refused
rather than misread.
"""

from __future__ import annotations

import sqlite3

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "migrate", "NewerSchemaError"]

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
