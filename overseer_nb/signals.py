"""What a handler raises to tell the runner how it failed (Overseer's signals)."""

from __future__ import annotations

__all__ = ["Fault", "Abort", "fault", "abort", "abort_silent"]


class Fault(Exception):
    """A known transient failure: the job is retried after a backoff."""


class Abort(Exception):
    """A known hard failure: the job and all its dependents are aborted."""

    def __init__(self, message: str = "", *, silent: bool = False):
        super().__init__(message)
        self.silent = silent


def fault(msg: str = "") -> None:
    """Signal a transient failure from a handler.

    The job goes back to unstarted and runs again after an exponential backoff
    with jitter; after ``max_faults`` faults it fails with a message saying so.
    """
    raise Fault(msg)


def abort(msg: str = "") -> None:
    """Signal a hard failure: abort this job and every job that depends on it."""
    raise Abort(msg)


def abort_silent(msg: str = "") -> None:
    """Like :func:`abort`, without logging the error loudly (no traceback kept)."""
    raise Abort(msg, silent=True)
