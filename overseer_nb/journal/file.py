"""The journal's SQLite file: where it lives, and the one thread that touches it.

sqlite3 connections must not cross threads, and the run loop, ipyparallel's
I/O thread and the user's thread all have something to write or read. So each
journal file has one :class:`Journal` per process, whose thread owns the only
connection and serves a queue; callers wait for its answer. Waiting is the
point: a step is on disk before the run acts on it or shows it.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import JournalError
from . import sql

__all__ = ["Journal", "journal_location", "open_journal", "MEMORY", "ENV_VAR"]

log = logging.getLogger("overseer_nb")

MEMORY = ":memory:"
OFF = frozenset({"off", "none", "false", "0"})  # values of the variable or option that turn it off
ENV_VAR = "OVERSEER_NB_JOURNAL"
BUSY_TIMEOUT = 10.0  # seconds to wait for another process's write lock

_FIX = (
    "Point the journal somewhere writable (the journal= keyword, the "
    f"{ENV_VAR} environment variable or c.Overseer.journal), or run without one (journal=False)."
)


def default_location() -> str:
    """The journal file in the user's Jupyter data directory."""
    from jupyter_core.paths import jupyter_data_dir

    return os.path.join(jupyter_data_dir(), "overseer_nb", "journal.sqlite")


def journal_location(journal: Any = None) -> str | None:
    """Where the journal is: the first that is set of ``journal``, the environment, the config, the default.

    ``journal`` is a path, ``":memory:"``, ``None``/``True`` (look further) or
    ``False`` (no journal: returns None). The environment variable or the
    option set to ``off`` (or ``none``, ``false``, ``0``) also means no journal.
    """
    if journal is False:
        return None
    if journal is not None and journal is not True:
        if isinstance(journal, Journal):
            return journal.path
        if not isinstance(journal, (str, os.PathLike)) or not os.fspath(journal):
            raise JournalError(
                f"journal= takes a file path, ':memory:', True or False, got {journal!r}"
            )
        return _normal(os.fspath(journal))
    env = os.environ.get(ENV_VAR, "")
    if env:
        return None if env.strip().lower() in OFF else _normal(env)
    from ..config import defaults

    configured = defaults().journal
    if configured:
        return None if configured.strip().lower() in OFF else _normal(configured)
    return default_location()


def _normal(path: str) -> str:
    return path if path == MEMORY else os.path.abspath(os.path.expanduser(path))


_journals: dict[str, Journal] = {}
_journals_lock = threading.Lock()


def open_journal(journal: Any = None) -> Journal | None:
    """The process's :class:`Journal` for ``journal`` (see :func:`journal_location`); None if off.

    Raises :class:`JournalError` if it cannot be opened.
    """
    if isinstance(journal, Journal):
        return journal
    path = journal_location(journal)
    if path is None:
        return None
    with _journals_lock:
        found = _journals.get(path)
        if found is None or found.closed:
            found = _journals[path] = Journal(path, create_dirs=path == default_location())
        return found


_WAKE = object()  # a queue item that only wakes the writer thread


class _Request:
    __slots__ = ("fn", "args", "write", "done", "value", "error")

    # write: True (one write transaction), False (one read transaction), None (none)
    def __init__(self, fn: Callable, args: tuple, write: bool | None):
        self.fn, self.args, self.write = fn, args, write
        self.done = threading.Lock()
        self.done.acquire()
        self.value: Any = None
        self.error: BaseException | None = None


class Journal:
    """One journal file (or the process's in-memory journal) and its writer thread.

    ``write(fn, *args)`` runs ``fn(conn, *args)`` on the writer thread inside
    one ``BEGIN IMMEDIATE`` transaction and returns its value; ``read`` does the
    same inside one read transaction (a consistent snapshot). Both raise
    :class:`JournalError` when SQLite fails.
    """

    def __init__(self, path: str, *, create_dirs: bool = False):
        self.path = path
        self.closed = False
        self._writable: bool | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        opened = _Request(self._open, (create_dirs,), write=False)
        self._conn: sqlite3.Connection | None = None
        self._ticks: list[list] = []  # [seconds, fn, when next] of every()
        self._thread = threading.Thread(target=self._serve, args=(opened,), daemon=True, name="overseer-journal")
        self._thread.start()
        self._wait(opened)

    def __repr__(self) -> str:
        return f"<Journal {self.path}>"

    # -- calling the writer thread ------------------------------------------
    def write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in one write transaction; return its value."""
        return self._call(_Request(fn, args, write=True))

    def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in one read transaction; return its value."""
        return self._call(_Request(fn, args, write=False))

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` outside any transaction (backups); return its value."""
        return self._call(_Request(fn, args, write=None))

    def every(self, seconds: float, fn: Callable[[sqlite3.Connection], Any]) -> None:
        """Run ``fn(conn)`` in a write transaction on the writer thread every ``seconds`` while it is open.

        For small bookkeeping (heartbeats): it waits behind queued requests, and
        an error is logged at debug level and tried again next time.
        """
        self._ticks.append([seconds, fn, time.monotonic() + seconds])
        self._queue.put(_WAKE)  # the writer thread may be waiting with no timeout

    def require_writable(self) -> None:
        """Raise :class:`JournalError` unless the journal takes writes (checked once)."""
        if self._writable is None:
            try:
                self.write(sql.touch)
                self._writable = True
            except JournalError:
                self._writable = False
                raise
        elif not self._writable:
            raise JournalError(f"the journal {self.path} cannot be written. {_FIX}")

    def _call(self, request: _Request) -> Any:
        if self.closed:
            raise JournalError(f"the journal {self.path} was closed")
        self._queue.put(request)
        return self._wait(request)

    def _wait(self, request: _Request) -> Any:
        while not request.done.acquire(timeout=1.0):
            if not self._thread.is_alive() and not request.done.acquire(timeout=0.1):
                raise JournalError(f"the journal {self.path} was closed")  # put after close()
        if request.error is not None:
            raise request.error
        return request.value

    def close(self) -> None:
        """Finish what is queued, close the file and stop the writer thread."""
        if self.closed:
            return
        self.closed = True
        self._queue.put(None)
        self._thread.join(timeout=10)

    # -- the writer thread ------------------------------------------------------
    def _serve(self, opened: _Request) -> None:
        self._run(opened)
        if opened.error is not None:
            self.closed = True
            return
        while True:
            try:
                request = self._queue.get(timeout=self._tick())
            except queue.Empty:
                continue
            if request is None:
                break
            if request is _WAKE:
                continue
            if not request.write:
                self._run(request)
                continue
            # writes queued meanwhile (other runs) share one transaction
            batch, later, stop = [request], None, False
            while True:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                if nxt is _WAKE:
                    continue
                if not nxt.write:
                    later = nxt
                    break
                batch.append(nxt)
            if len(batch) == 1:
                self._run(request)
            else:
                self._write_batch(batch)
            if later is not None:
                self._run(later)
            if stop:
                break
        # requests put just before close() still get an answer
        while True:
            try:
                left = self._queue.get_nowait()
            except queue.Empty:
                break
            if left is not None and left is not _WAKE:
                left.error = JournalError(f"the journal {self.path} was closed")
                left.done.release()
        if self._conn is not None:
            self._conn.close()

    def _tick(self) -> float | None:
        """Run what :meth:`every` asked for that is due; return the seconds until the next (None: none)."""
        if not self._ticks:
            return None
        now = time.monotonic()
        for tick in list(self._ticks):
            seconds, fn, due = tick
            if due <= now:
                tick[2] = now + seconds
                try:
                    self._transaction(fn, (), True)
                except Exception as exc:
                    log.debug("overseer_nb: journal %s: %r failed: %s", self.path, fn, exc)
        return max(0.0, min(t[2] for t in self._ticks) - time.monotonic())

    def _run(self, request: _Request) -> None:
        try:
            request.value = self._transaction(request.fn, request.args, request.write)
        except BaseException as exc:
            request.error = self._error(exc, request.write)
        request.done.release()

    def _write_batch(self, batch: list[_Request]) -> None:
        try:
            values = self._transaction(
                lambda conn: [r.fn(conn, *r.args) for r in batch], (), True
            )
        except BaseException:
            for request in batch:  # one bad request must not fail the others
                self._run(request)
            return
        for request, value in zip(batch, values, strict=True):
            request.value = value
            request.done.release()

    def _transaction(self, fn: Callable, args: tuple, write: bool | None) -> Any:
        conn = self._conn
        if conn is None:  # the request that opens the file
            return fn(*args)
        if write is None:
            return fn(conn, *args)
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            value = fn(conn, *args)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return value

    def _error(self, exc: BaseException, write: bool | None) -> BaseException:
        if not isinstance(exc, (sqlite3.Error, OSError)):
            return exc
        doing = "open" if self._conn is None else "write" if write else "read"
        return JournalError(f"cannot {doing} the journal {self.path}: {exc}. {_FIX}")

    def _open(self, create_dirs: bool) -> None:
        if self.path == MEMORY:
            conn = sqlite3.connect(MEMORY, isolation_level=None)
        else:
            conn = self._open_file(create_dirs)
        try:
            sql.configure(conn, wal=self.path != MEMORY)
            sql.migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _open_file(self, create_dirs: bool) -> sqlite3.Connection:
        folder = os.path.dirname(self.path)
        if create_dirs:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        elif not os.path.isdir(folder):
            raise OSError(f"its folder {folder} does not exist")
        try:
            # created here, not by SQLite, so that it is private from the start;
            # SQLite gives the -wal and -shm files the same mode
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, cached_statements=256)


@atexit.register
def _close_all() -> None:
    with _journals_lock:
        journals = list(_journals.values())
    for journal in journals:
        journal.close()
