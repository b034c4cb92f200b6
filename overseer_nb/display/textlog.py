"""A text log of a run's transitions, through the ``overseer_nb`` logger.

Failures and loud aborts are logged as errors with their message; an
``abort_silent`` is logged at INFO; every other transition at DEBUG.
"""

from __future__ import annotations

import logging

from ..states import ABORTED, FAILED
from ..steps import Step

__all__ = ["log_step"]

log = logging.getLogger("overseer_nb")


def log_step(run, step: Step) -> None:
    """Subscriber: log each transition of ``step``."""
    for t in step.transitions:
        line = "run %s: %s %s -> %s (%s, attempt %d)%s"
        extra = f": {t.message}" if t.message else ""
        args = (run.run_id, t.job, t.old, t.new, t.reason, t.attempt, extra)
        if t.new == FAILED or (t.new == ABORTED and t.reason == "abort" and _loud(run, t.job)):
            log.error(line, *args)
        elif t.new == ABORTED and t.reason == "abort":
            log.info(line, *args)
        else:
            log.debug(line, *args)


def _loud(run, job: str) -> bool:
    attempts = run.jobs[job].attempts
    err = attempts[-1].error if attempts else None
    return err is None or bool(err.traceback)
