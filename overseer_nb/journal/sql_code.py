"""The journal's SQL about code: each run's handler code, and the cache's lookups by fingerprint.

Like :mod:`.sql`, each function takes the open connection on the journal's
writer thread, inside the transaction the caller opened. The ``code`` table
itself is made by migration 5 in :data:`.sql.MIGRATIONS`.
"""

from __future__ import annotations

import sqlite3

__all__ = ["write_code", "read_code", "find_finished", "last_parts"]


def write_code(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    """Each job type's handler code of a run, as (run_id, job, digest, source, recorded) rows; newer ones replace."""
    conn.executemany(
        "INSERT INTO code (run_id, job, digest, source, recorded) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (run_id, job) DO UPDATE SET digest = excluded.digest, source = excluded.source,"
        " recorded = excluded.recorded",
        rows,
    )


def read_code(conn: sqlite3.Connection, run_id: str) -> dict[str, tuple[str | None, str | None]]:
    """Job type -> (digest, source) of the handler code recorded for ``run_id`` (empty: none recorded)."""
    rows = conn.execute("SELECT job, digest, source FROM code WHERE run_id = ?", (run_id,))
    return {job: (digest, source) for job, digest, source in rows}


def find_finished(conn: sqlite3.Connection, fingerprints: list[str], run_id: str) -> dict[str, list[tuple]]:
    """Finished jobs of other runs with each of ``fingerprints``, newest first.

    fingerprint -> [(run_id, job, result, result_note, length, item_digests), ...].
    """
    found: dict[str, list[tuple]] = {}
    for start in range(0, len(fingerprints), 500):  # SQLite's limit on parameters
        chunk = fingerprints[start:start + 500]
        rows = conn.execute(
            f"SELECT fingerprint, run_id, job, result, result_note, length, item_digests FROM jobs WHERE fingerprint IN"
            f" ({', '.join('?' * len(chunk))}) AND status = 'finished' AND run_id != ? ORDER BY updated DESC",
            (*chunk, run_id),
        ).fetchall()
        for fp, *rest in rows:
            found.setdefault(fp, []).append(tuple(rest))
    return found


def last_parts(conn: sqlite3.Connection, jobs: list[str], run_id: str, before: float) -> dict[str, str]:
    """For each of ``jobs``: the fingerprint parts (JSON) it had in the latest other run started before ``before``."""
    found: dict[str, str] = {}
    for start in range(0, len(jobs), 500):
        chunk = jobs[start:start + 500]
        rows = conn.execute(
            f"SELECT jobs.job, jobs.fingerprint_parts FROM jobs JOIN runs ON runs.run_id = jobs.run_id"
            f" WHERE jobs.job IN ({', '.join('?' * len(chunk))}) AND jobs.run_id != ? AND runs.created < ?"
            " AND jobs.fingerprint_parts IS NOT NULL ORDER BY jobs.updated ASC",
            (*chunk, run_id, before),
        ).fetchall()
        found.update(dict(rows))  # the newest last, so it wins
    return found

