"""What the widget's panel shows for one job, and what a button would run again.

Plain data (JSON-ready dicts and sorted lists) built from a :class:`~overseer_nb.running.Run`,
kept apart from the widget so it can be read and tested without a front end.
"""

from __future__ import annotations

import reprlib
from typing import Any

from ..states import ABORTED, FAILED, STARTED, UNSTARTED
from ..text import clip_tail

__all__ = ["ACTIONS", "job_details", "preview", "act", "TAIL_CHARS"]

# The widget's buttons: action name -> label. The labels are public hooks (SPEC §6).
ACTIONS = {
    "retry_failed": "Retry failed",
    "cancel": "Cancel",
    "retry": "Retry subtree",
    "rerun": "Rerun from here",
    "abort": "Abort",
}

TAIL_CHARS = 4000  # enough for the end of a traceback or a log, small enough to send often

_repr = reprlib.Repr()
_repr.maxstring = 160
_repr.maxother = 160
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 8


def _result_summary(record: Any) -> str:
    if record.result_data is None:
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


def job_details(run: Any, job: str) -> dict[str, Any]:
    """The panel's data for ``job`` of ``run``; raises ``KeyError`` for an unknown job."""
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
    return {
        "job": job,
        "status": rec.status,
        "display_state": rec.display_state,
        "message": rec.message,
        "parents": list(run.graph.parents(job)),
        "attempts": attempts,
        "stdout": clip_tail(last.stdout if last else "", TAIL_CHARS),
        "stderr": clip_tail(last.stderr if last else "", TAIL_CHARS),
        "traceback": clip_tail(traceback, TAIL_CHARS),
        "result": _result_summary(rec),
        # what the panel's buttons may do now; the kernel still checks on click
        "can": {
            "retry": rec.status in (FAILED, ABORTED),
            "rerun": rec.status != STARTED,
            "abort": rec.status in (UNSTARTED, STARTED),
        },
    }


def _check_action(action: str, job: str | None) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown widget action {action!r}; valid: {', '.join(ACTIONS)}")
    if action in ("retry", "rerun", "abort") and not job:
        raise ValueError(f"the widget action {action!r} needs a job; select a node first")


def preview(run: Any, action: str, job: str | None = None) -> list[str]:
    """The job types ``action`` would run again (or stop), changing nothing."""
    _check_action(action, job)
    if action == "retry_failed":
        return sorted(run.retry(dry_run=True))
    if action == "retry":
        return sorted(run.retry(job, dry_run=True))
    if action == "rerun":
        return sorted(run.rerun(job, dry_run=True))
    statuses = run.statuses
    if action == "abort":
        tree = {job} | run.graph.descendants(job)
        return sorted(j for j in tree if statuses[j] in (UNSTARTED, STARTED))
    return sorted(j for j, s in statuses.items() if s in (UNSTARTED, STARTED))  # cancel


def act(run: Any, action: str, job: str | None = None) -> list[str]:
    """Carry out ``action`` on ``run``; return the job types it affects."""
    _check_action(action, job)
    if action == "retry_failed":
        return sorted(run.retry())
    if action == "retry":
        return sorted(run.retry(job))
    if action == "rerun":
        return sorted(run.rerun(job))
    if action == "abort":
        return sorted(run.abort(job))
    affected = preview(run, "cancel")
    run.cancel()
    return affected
