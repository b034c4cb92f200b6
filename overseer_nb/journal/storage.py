"""What the result store holds per run, and pruning it: ``ov.store_usage()``, ``ov.prune()``.

The store (:mod:`overseer_nb.store`) knows files; the journal knows runs. A
run in progress (here, or in another live process that journals it) is never
pruned; a pruned run stays in the journal, and ``run.results`` of its jobs
then say their file is gone (``run.resume()`` runs them again).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from ..config import defaults
from ..errors import OptionError
from ..running import Run
from ..store import ResultStore, store_location
from . import sql
from .file import open_journal
from .owners import owner_alive
from .tables import Table

__all__ = ["StoreRow", "store_usage", "prune", "result_store"]


def _size(nbytes: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:,} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024  # type: ignore[assignment]
    return ""


@dataclass(frozen=True)
class StoreRow:
    """One run's results in the store: what ``ov.store_usage()`` and ``ov.prune()`` list.

    state: ``running`` (never pruned), ``done``, or ``not in the journal``;
    pruned: True once ``prune`` deleted them (False in a dry run).
    """

    run_id: str
    files: int
    nbytes: int
    newest: float
    state: str
    pruned: bool = False

    columns: ClassVar[tuple[str, ...]] = ("run id", "files", "size", "newest", "state")
    empty: ClassVar[str] = "(the result store holds nothing)"

    def cells(self) -> tuple[Any, ...]:
        when = dt.datetime.fromtimestamp(self.newest).strftime("%Y-%m-%d %H:%M:%S")
        state = f"{self.state}, pruned" if self.pruned else self.state
        return (self.run_id, self.files, _size(self.nbytes), when, state)


def result_store(store: Any = None, journal: Any = None) -> ResultStore:
    """The store runs use by default (``store`` given: that one), by the location rule of SPEC §11."""
    book = open_journal(journal) if store is None else None
    path = book.path if book is not None else None
    return ResultStore(store_location(store, configured=defaults().store, journal_path=path))


def _states(journal: Any, run_ids: list[str]) -> dict[str, str]:
    live_here = {run.run_id for run in Run.in_progress()}
    book = open_journal(journal)
    owners = {rid: book.read(sql.read_owner, rid) for rid in run_ids} if book is not None else {}
    states = {}
    for rid in run_ids:
        owner = owners.get(rid)
        if rid in live_here or (owner is not None and owner["active"] and owner_alive(owner)):
            states[rid] = "running"
        else:
            states[rid] = "not in the journal" if owner is None else "done"
    return states


def store_usage(store: Any = None, journal: Any = None) -> Table:
    """What the result store holds, per run, newest first (a table; each row a :class:`StoreRow`)."""
    where = result_store(store, journal)
    usage = where.usage()
    states = _states(journal, [u.run_id for u in usage])
    rows = [StoreRow(u.run_id, u.files, u.nbytes, u.newest, states[u.run_id]) for u in usage]
    total = sum(r.nbytes for r in rows)
    return Table(rows, StoreRow, title=f"result store {where.root}: {_size(total)} in {len(rows)} runs",
                 right_digits=False)


def _seconds(older_than: Any) -> float:
    if isinstance(older_than, dt.timedelta):
        return older_than.total_seconds()
    if isinstance(older_than, (int, float)) and not isinstance(older_than, bool) and older_than >= 0:
        return float(older_than)
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhms])\s*", str(older_than))
    if found is None:
        raise OptionError(
            f"older_than must be seconds, a timedelta or text like '7d', '12h', '30m', got {older_than!r}"
        )
    return float(found.group(1)) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[found.group(2)]


def prune(
    runs: Iterable[Any] | None = None,
    *,
    older_than: Any = None,
    keep_last: int | None = None,
    store: Any = None,
    journal: Any = None,
    dry_run: bool = False,
) -> Table:
    """Delete the stored results of old runs; return what was (or, with ``dry_run``, would be) deleted.

    runs: run ids (or runs, or rows of ``ov.runs()``) to prune. older_than:
    runs whose newest result is older (seconds, a ``timedelta``, or ``"7d"``,
    ``"12h"``, ``"30m"``). keep_last: keep the newest N runs. At least one of
    the three is needed; given together, a run is pruned only if every one
    says so. A run in progress is never pruned. The runs stay in the journal.
    """
    if runs is None and older_than is None and keep_last is None:
        raise OptionError(
            "say which results to delete: prune(runs=[...]), prune(older_than='7d') or prune(keep_last=N)"
        )
    if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0):
        raise OptionError(f"keep_last must be a whole number >= 0, got {keep_last!r}")
    wanted = None if runs is None else {getattr(r, "run_id", r) for r in runs}
    cutoff = None if older_than is None else time.time() - _seconds(older_than)
    where = result_store(store, journal)
    usage = where.usage()  # newest first
    states = _states(journal, [u.run_id for u in usage])
    rows, doomed, kept = [], [], 0
    for rank, u in enumerate(usage):
        chosen = (
            (wanted is None or u.run_id in wanted)
            and (cutoff is None or u.newest < cutoff)
            and (keep_last is None or rank >= keep_last)
        )
        if chosen and states[u.run_id] == "running":
            kept += 1
        elif chosen:
            doomed.append(u.run_id)
            rows.append(StoreRow(u.run_id, u.files, u.nbytes, u.newest, states[u.run_id], pruned=not dry_run))
    if not dry_run:
        where.delete_runs(doomed)
    freed = sum(r.nbytes for r in rows)
    verb = "would free" if dry_run else "freed"
    note = f"; {kept} run{'s' if kept != 1 else ''} in progress kept" if kept else ""
    return Table(rows, StoreRow, title=f"{verb} {_size(freed)} of {len(rows)} runs in {where.root}{note}",
                 right_digits=False)
