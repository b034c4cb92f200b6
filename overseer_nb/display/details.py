"""What the widget's panel shows for one job, and what a button would run again.

Plain data (JSON-ready dicts and sorted lists) built from a :class:`~overseer_nb.running.Run`,
kept apart from the widget so it can be read and tested without a front end.
A job is a job type or an item of a mapped one (``train[3]``); the panel of a
mapped type lists its items a page at a time (:func:`item_page`).
"""

from __future__ import annotations

import reprlib
import time
from typing import Any

from ..cache import code_digest
from ..graph import split_key
from ..handlers import current_lifecycle
from ..states import ABORTED, DISPLAY_STATES, FAILED, STARTED, UNSTARTED
from ..text import clip_end, clip_tail
from ..tracebacks import location_of

__all__ = ["ACTIONS", "ITEM_PAGE", "REPLY_JOBS", "TAIL_CHARS", "CHANGED", "job_details", "item_page", "preview", "act",
           "job_order", "reply_jobs", "handler_info", "hover_why"]

# The widget's buttons: action name -> label. The labels are public hooks (SPEC §6).
ACTIONS = {
    "retry_failed": "Retry failed",
    "cancel": "Cancel",
    "retry": "Retry subtree",
    "rerun": "Rerun from here",
    "abort": "Abort",
}

TAIL_CHARS = 4000  # enough for the end of a traceback or a log, small enough to send often
ITEM_PAGE = 200  # items of a mapped type listed at a time
REPLY_JOBS = 200  # job names a preview or done reply lists (it counts them all)
_FIRST = {FAILED: 0, ABORTED: 1}  # in a list of items, what needs attention comes first
CHANGED = "the handler changed since this attempt: Retry uses the new code"

_repr = reprlib.Repr()
_repr.maxstring = 160
_repr.maxother = 160
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 8


def job_order(key: str) -> tuple[str, int]:
    """A sort key: job types by name, the items of one in index order (``train[2]`` before ``train[10]``)."""
    job, index = split_key(key)
    return (job, -1 if index is None else index)


def reply_jobs(jobs: list[str]) -> dict[str, Any]:
    """How a reply names the jobs a button affects: the first :data:`REPLY_JOBS`, how many, their nodes.

    ``nodes`` are the graph's nodes to highlight: the job types, an item's being its type's.
    """
    nodes = sorted({split_key(job)[0] for job in jobs})
    return {"jobs": jobs[:REPLY_JOBS], "count": len(jobs), "nodes": nodes}


def _result_summary(record: Any) -> str:
    if record.mapped or record.result_data is None:
        return ""
    stored = record.stored
    if stored is not None:  # in the result store: its summary, without reading the file
        gone = "" if stored.exists() else "; its file is gone from the store (run.resume() makes it again)"
        return f"{stored.summary or stored.type_name}  ({stored.nbytes:,} bytes, in the result store{gone})"
    try:
        text = _repr.repr(record.result)
    except Exception as exc:  # a result whose class is not importable here, for one
        text = f"<cannot load the result here: {type(exc).__name__}: {exc}>"
    return f"{text[:300]}  ({len(record.result_data):,} bytes pickled)"


def _can(rec: Any) -> dict[str, bool]:
    # what the panel's buttons may do now; the kernel still checks on click
    return {
        "retry": rec.status in (FAILED, ABORTED),
        "rerun": rec.status != STARTED,
        "abort": rec.status in (UNSTARTED, STARTED),
    }


def _uses_cache(run: Any, job: str) -> bool:
    machine = getattr(run, "machine", None)
    return machine is not None and hasattr(run, "explain") and machine.options_for(job).cache


def handler_info(run: Any, job: str) -> dict[str, Any]:
    """Where the handler of ``job``'s type was defined, and whether it changed since ``job``'s last attempt.

    Returns ``where``: None, or ``text`` (``handler: cell In[5], line 3`` or
    ``handler: module pipeline.py, line 10``), ``cell`` (the execution count,
    None for a file), ``file`` and ``line``; and ``changed``: :data:`CHANGED`
    when the code a retry would send now (the run's handlers as they are,
    a function redefined in a cell resolved to its newest definition) is not
    the code the last attempt ran with, else ''.
    """
    kind = split_key(job)[0]
    handlers = getattr(run, "handlers", None) or {}
    try:
        life = current_lifecycle(kind, handlers[kind])
    except Exception:  # no handler (a run loaded from the journal), or one that no longer loads
        return {"where": None, "changed": ""}
    found = location_of(life.process)
    where = None if found is None else {
        "text": f"handler: {found.text}", "cell": found.execution_count, "file": found.filename, "line": found.line,
    }
    rec = run.jobs[job]
    ran = rec.attempts[-1].code if rec.attempts and not rec.mapped else None
    changed = ""
    if ran is not None:
        try:
            now = code_digest((life.pre_process, life.process, life.post_process))
        except Exception:
            now = ran
        changed = CHANGED if now != ran else ""
    return {"where": where, "changed": changed}


def hover_why(run: Any, job: str) -> str:
    """What an unstarted ``job`` waits for (``run.why``), for the tooltip of its node; '' for any other job."""
    rec = run.jobs[job]
    return run.why(job) if rec.status == UNSTARTED and hasattr(run, "why") else ""


def job_details(run: Any, job: str, *, state: str | None = None, offset: int = 0) -> dict[str, Any]:
    """The panel's data for ``job`` of ``run``; raises ``KeyError`` for an unknown job.

    For a mapped type, ``items`` is :func:`item_page` with ``state`` and ``offset``;
    an item (``train[3]``) names its type in ``item_of``. ``traceback`` is the
    last error's plain text (as IPython shows it, :mod:`overseer_nb.tracebacks`);
    ``where`` and ``changed`` are :func:`handler_info`'s.
    """
    rec = run.jobs[job]
    attempts = [
        {
            "number": a.number,
            "engine": "" if a.engine is None else str(a.engine),
            "start": a.start,
            "duration": a.duration,
            "outcome": a.outcome or ("running" if a.start is not None else "queued"),
        }
        for a in rec.attempts
    ]
    last = rec.attempts[-1] if rec.attempts else None
    error = rec.error
    traceback = ""
    if error is not None:
        traceback = error.traceback or str(error)
    details = {
        "job": job,
        "status": rec.status,
        "display_state": rec.display_state,
        "message": rec.message,
        "parents": list(run.graph.parents(split_key(job)[0])),  # job types: an item's are its type's
        "attempts": attempts,
        "stdout": clip_tail(last.stdout if last else "", TAIL_CHARS),
        "stderr": clip_tail(last.stderr if last else "", TAIL_CHARS),
        "traceback": clip_tail(traceback, TAIL_CHARS),
        "result": _result_summary(rec),
        "can": _can(rec),
        "mapped": rec.mapped,
        "item_of": rec.type if rec.index is not None else None,
        # why it ran or was reused, when the run uses the cache ('' otherwise)
        "explain": run.explain(job) if _uses_cache(run, job) else "",
        # what an unstarted job waits for (run.why)
        "why": run.why(job) if rec.status == "unstarted" and hasattr(run, "why") else "",
        **handler_info(run, job),  # where: the handler's cell or file; changed: since the last attempt
    }
    if rec.mapped:
        details["items"] = item_page(run, job, state=state, offset=offset)
    return details


def _row(item: Any, now: float) -> dict[str, Any]:
    last = item.attempts[-1] if item.attempts else None
    running = last is not None and last.start is not None and last.end is None
    duration = (now - last.start) if running else (last.duration if last is not None else None)
    note = str(item.error) if item.error is not None else item.message
    return {
        "job": item.key,
        "index": item.index,
        "state": item.display_state,
        "status": item.status,
        "attempts": len(item.attempts),
        "duration": duration,
        "running": running,
        "error": clip_end(note.strip().splitlines()[0] if note.strip() else "", 120),
        "can": _can(item),
    }


def item_page(run: Any, job: str, *, state: str | None = None, offset: int = 0, limit: int = ITEM_PAGE) -> dict[str, Any]:
    """A page of the items of mapped type ``job``: failed ones first, then aborted, then the rest by index.

    ``state``: only items in that display state. Returns ``known`` (False while
    the items are not known), ``total``, ``counts`` (display state -> items),
    ``matching`` (items in ``state``), ``offset``, ``limit`` and ``rows``: per item
    its name (``job``: ``train[3]``), ``state``, ``attempts``, ``duration``
    (seconds; of the running attempt so far when ``running``), the first line
    of its ``error`` (or message) and what its buttons may do (``can``).
    Raises ``ValueError`` for a state that is not a display state or a type that is not mapped.
    """
    rec = run.jobs[job]
    if not rec.mapped:
        raise ValueError(f"{job!r} is not a mapped job type; mapped types: {', '.join(run.graph.mapped) or 'none'}")
    if state is not None and state not in DISPLAY_STATES:
        raise ValueError(f"unknown display state {state!r}; valid: {', '.join(DISPLAY_STATES)}")
    items = list(rec.items)
    counts: dict[str, int] = {}
    for item in items:
        counts[item.display_state] = counts.get(item.display_state, 0) + 1
    chosen = items if state is None else [item for item in items if item.display_state == state]
    chosen.sort(key=lambda item: _FIRST.get(item.display_state, 2))  # stable: by index within
    offset = max(0, min(int(offset), (len(chosen) - 1) // limit * limit if chosen else 0))
    now = time.time()
    return {
        "known": run.machine.topo.items.get(job) is not None,
        "over": run.graph.each_of(job),
        "total": len(items),
        "counts": counts,
        "state": state,
        "matching": len(chosen),
        "offset": offset,
        "limit": limit,
        "rows": [_row(item, now) for item in chosen[offset:offset + limit]],
    }


def _check_action(action: str, job: str | None) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown widget action {action!r}; valid: {', '.join(ACTIONS)}")
    if action in ("retry", "rerun", "abort") and not job:
        raise ValueError(f"the widget action {action!r} needs a job; select a node first")


def _open(run: Any, keys: set[str]) -> list[str]:
    """The ``keys`` whose jobs are unstarted or running; a mapped type with known items is not a job itself."""
    jobs, topo = run.jobs, run.machine.topo
    return sorted(
        (k for k in keys if k in jobs and jobs[k].status in (UNSTARTED, STARTED)
         and not (jobs[k].mapped and topo.items.get(k) is not None)),
        key=job_order,
    )


def preview(run: Any, action: str, job: str | None = None) -> list[str]:
    """The jobs ``action`` would run again (or stop), changing nothing: job types and items (``train[3]``)."""
    _check_action(action, job)
    if action == "retry_failed":
        return sorted(run.retry(dry_run=True), key=job_order)
    if action == "retry":
        return sorted(run.retry(job, dry_run=True), key=job_order)
    if action == "rerun":
        return sorted(run.rerun(job, dry_run=True), key=job_order)
    topo = run.machine.topo
    if action == "abort":
        if job not in run.jobs:
            raise KeyError(f"{job!r} is not a job of run {run.run_id}")
        roots = topo.item_keys(job) if topo.items.get(job) is not None else [job]  # a mapped type: its items
        tree = set(roots)
        for root in roots:
            tree |= topo.descendants(root)
        return _open(run, tree)
    return _open(run, set(run.jobs))  # cancel


def act(run: Any, action: str, job: str | None = None) -> list[str]:
    """Carry out ``action`` on ``run``; return the jobs it affects (job types and items)."""
    _check_action(action, job)
    if action == "retry_failed":
        return sorted(run.retry(), key=job_order)
    if action == "retry":
        return sorted(run.retry(job), key=job_order)
    if action == "rerun":
        return sorted(run.rerun(job), key=job_order)
    if action == "abort":
        return sorted(run.abort(job), key=job_order)
    affected = preview(run, "cancel")
    run.cancel()
    return affected
