"""Each run's handler code in the journal: per job type, its source and a digest of its code.

A run loaded from the journal has no handler functions, so to say which job
types' code changed between two runs (``ov.diff``) the journal keeps the code a
run ran with: written when the run is taken (started or resumed, by
:meth:`~overseer_nb.journal.recorder.Recorder.register`) and again when a
retry or rerun sends a job type with handlers changed since. The digest is the
cache's (:func:`~overseer_nb.cache.handler_print`, made once per handler
object and shared with the run's cache): the code of the handler's
stages and of the functions they call, and the versions of installed modules
they use; not the values of globals. The source is the stages' own text, or
None where Python cannot find it (a function made by ``exec``, a builtin).
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..cache import Uncacheable, digest_bytes
from ..errors import JournalError
from ..handlers import current_lifecycle
from . import sql_code

if TYPE_CHECKING:
    from ..running import Run
    from .file import Journal

__all__ = ["Code", "handler_code", "code_rows", "record_code", "run_code"]

log = logging.getLogger("overseer_nb")

# job type -> (digest, source); either may be None (not known)
Code = dict[str, tuple[str | None, str | None]]

_STAGES = ("pre_process", "process", "post_process")


def _source(fn: Any, memo: dict) -> str | None:
    key = id(fn)
    if key not in memo:  # many job types may share one function: read once
        try:
            memo[key] = inspect.getsource(inspect.unwrap(fn)).rstrip() + "\n"
        except (OSError, TypeError):
            memo[key] = None
    return memo[key]


def handler_code(run: Run, job: str, memo: dict | None = None) -> tuple[str | None, str | None]:
    """(digest, source) of ``job``'s handler in ``run`` as it is now; (None, None) if it has none that is valid.

    memo: what was read already for the job types of one run (sources by function id, code by stages).
    """
    memo = {} if memo is None else memo
    try:
        life = current_lifecycle(job, run.handlers[job])
    except Exception:
        return None, None
    given = {name: fn for name in _STAGES if (fn := getattr(life, name)) is not None}
    key = tuple((name, id(fn)) for name, fn in given.items())
    if key in memo:  # job types sharing their stages share their code
        return memo[key]
    try:
        found = run.cache.handler_print(job)  # made once per handler object, shared with the cache
    except Uncacheable:  # a value it reads cannot be pickled: the source stands for its code
        found = None
    except Exception:
        return None, None
    sources = {name: _source(fn, memo) for name, fn in given.items()}
    if any(text is None for text in sources.values()):
        source = None
    elif list(given) == ["process"]:
        source = sources["process"]
    else:  # a lifecycle: each stage under its name
        source = "".join(f"# {name}\n{sources[name]}" for name in given)
    if found is not None:
        digest: str | None = digest_bytes(json.dumps([found.code, found.modules], sort_keys=True).encode())
    else:
        digest = digest_bytes(source.encode()) if source is not None else None
    memo[key] = (digest, source)
    return digest, source


def code_rows(run: Run, jobs: Iterable[str] | None = None, known: Code | None = None) -> list[tuple]:
    """``code`` rows of ``run``'s job types (all, or ``jobs``) from its handlers; only those not as in ``known``."""
    handlers: Mapping[str, Any] = run.handlers or {}
    now = time.time()
    rows: list[tuple] = []
    memo: dict = {}
    for job in run.graph if jobs is None else jobs:
        if job not in handlers:
            continue
        digest, source = handler_code(run, job, memo)
        if known is not None and known.get(job) == (digest, source):
            continue
        rows.append((run.run_id, job, digest, source, now))
    return rows


def record_code(journal: Journal, run: Run, known: Code, jobs: Iterable[str] | None = None) -> None:
    """Write the handler code of ``run``'s job types (all, or ``jobs``) where it is not as in ``known``; update it.

    ``known``: what the journal holds for the run (the recorder's). Part of
    ``ov.diff``'s record, not of the run's state: a failed write is logged and
    the run goes on.
    """
    rows = code_rows(run, jobs, known)
    if not rows:
        return
    try:
        journal.write(sql_code.write_code, rows)
    except JournalError as exc:
        log.debug("overseer_nb: run %s: its handler code was not recorded: %s", run.run_id, exc)
        return
    known.update((job, (digest, source)) for _rid, job, digest, source, _at in rows)


def run_code(run: Run, journal: Journal | None) -> tuple[Code, str]:
    """The handler code of ``run``, and where it comes from.

    From the journal when it recorded the run's code (``"journal"``); else,
    for a run holding handlers (one run without a journal), from them as they
    are now (``"handlers"``); else nothing (``""``: code unknown).
    """
    if journal is not None:
        recorded = journal.read(sql_code.read_code, run.run_id)
        if recorded:
            return recorded, "journal"
    if run.handlers:
        return {row[1]: (row[2], row[3]) for row in code_rows(run)}, "handlers"
    return {}, ""
