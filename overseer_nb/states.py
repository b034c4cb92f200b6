"""The state vocabulary: stored statuses, allowed moves, derived display states.

Overseer's five statuses are what is stored. Display states are derived here and
nowhere else, so the API, the journal, the widget's CSS classes and the docs
all use the same words. The other words a journal stores or a run shows (holds,
outcome kinds, attempt outcomes) are named here too, each as a tuple of its values.
"""

from __future__ import annotations

from .errors import TransitionError

__all__ = [
    "UNSTARTED",
    "STARTED",
    "FINISHED",
    "FAILED",
    "ABORTED",
    "STATUSES",
    "BAD_STATUSES",
    "BLOCKED",
    "RETRYING",
    "REQUEUED",
    "CACHED",
    "DISPLAY_STATES",
    "HOLD_JOURNAL",
    "HOLD_NO_ENGINES",
    "HOLD_CLUSTER_LOST",
    "HOLD_RESUME",
    "HOLDS",
    "OUTCOME_OK",
    "OUTCOME_FAULT",
    "OUTCOME_ABORT",
    "OUTCOME_ERROR",
    "OUTCOME_INTERRUPTED",
    "OUTCOME_FENCED",
    "OUTCOME_LOST",
    "OUTCOME_UNSENDABLE",
    "OUTCOME_INPUT_LOST",
    "OUTCOME_KINDS",
    "ATTEMPT_FINISHED",
    "ATTEMPT_FAILED",
    "ATTEMPT_FAULT",
    "ATTEMPT_ABORTED",
    "ATTEMPT_TIMEOUT",
    "ATTEMPT_LOST",
    "ATTEMPT_RETRY",
    "ATTEMPT_CANCELLED",
    "ATTEMPT_OUTCOMES",
    "TRANSITIONS",
    "ITEMS",
    "mapped_status",
    "check_transition",
    "display_state",
]

UNSTARTED = "unstarted"
STARTED = "started"
FINISHED = "finished"
FAILED = "failed"
ABORTED = "aborted"
STATUSES = (UNSTARTED, STARTED, FINISHED, FAILED, ABORTED)
# a job in one blocks its descendants, and run.retry() runs it again
BAD_STATUSES = (FAILED, ABORTED)

BLOCKED = "blocked"
RETRYING = "retrying"
REQUEUED = "requeued"
CACHED = "cached"  # finished by reusing an earlier run's result
DISPLAY_STATES = STATUSES + (BLOCKED, RETRYING, REQUEUED, CACHED)

# Why a run submits nothing now (any one is enough).
HOLD_JOURNAL = "held"  # the journal refused a write
HOLD_NO_ENGINES = "no engines"
HOLD_CLUSTER_LOST = "cluster lost"
HOLD_RESUME = "resume"  # a resume is being applied before the run starts
HOLDS = (HOLD_JOURNAL, HOLD_NO_ENGINES, HOLD_CLUSTER_LOST, HOLD_RESUME)

# How an attempt ended, as its engine (or the executor) reports it: records.Outcome.kind.
OUTCOME_OK = "ok"
OUTCOME_FAULT = "fault"
OUTCOME_ABORT = "abort"
OUTCOME_ERROR = "error"
OUTCOME_INTERRUPTED = "interrupted"
OUTCOME_LOST = "lost"  # its engine died
OUTCOME_UNSENDABLE = "unsendable"  # it never reached an engine
OUTCOME_INPUT_LOST = "input_lost"  # a parent's stored result could not be read: the parent runs again
# sent ahead of a parent that did not finish: it ended at once, its handler did not run
OUTCOME_FENCED = "fenced"
OUTCOME_KINDS = (
    OUTCOME_OK, OUTCOME_FAULT, OUTCOME_ABORT, OUTCOME_ERROR, OUTCOME_INTERRUPTED, OUTCOME_LOST, OUTCOME_UNSENDABLE,
    OUTCOME_INPUT_LOST, OUTCOME_FENCED,
)

# What became of an attempt, as stored: records.Attempt.outcome (None while it runs).
ATTEMPT_FINISHED = "finished"
ATTEMPT_FAILED = "failed"
ATTEMPT_FAULT = "fault"
ATTEMPT_ABORTED = "aborted"
ATTEMPT_TIMEOUT = "timeout"
ATTEMPT_LOST = "lost"
ATTEMPT_RETRY = "retry"  # failed, and retried automatically
ATTEMPT_CANCELLED = "cancelled"
ATTEMPT_OUTCOMES = (
    ATTEMPT_FINISHED, ATTEMPT_FAILED, ATTEMPT_FAULT, ATTEMPT_ABORTED, ATTEMPT_TIMEOUT, ATTEMPT_LOST, ATTEMPT_RETRY,
    ATTEMPT_CANCELLED,
)

# Every allowed move, with the reasons that may cause it. Overseer's own moves
# first; the last three are the user's retry, rerun and a resume after a restart.
TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
    # adopted: after a kernel restart, an attempt the cluster still ran is taken back
    (UNSTARTED, STARTED): frozenset({"engine took it", "adopted"}),
    (STARTED, FINISHED): frozenset({"returned"}),
    # cached: an earlier run made the same result (same fingerprint); the job did not run
    (UNSTARTED, FINISHED): frozenset({"cached"}),
    (STARTED, FAILED): frozenset(
        {"exception", "timeout", "faulted too often", "engine lost too often", "input lost too often", "not sendable"}
    ),
    # resume: the kernel that ran it stopped mid-job
    # input lost: a parent's stored result could not be read; the job waits for the parent to run again
    (STARTED, UNSTARTED): frozenset({"fault", "engine lost", "automatic retry", "resume", "input lost"}),
    (STARTED, ABORTED): frozenset({"abort", "cancel", "parent aborted"}),
    (UNSTARTED, ABORTED): frozenset({"abort", "cancel", "parent aborted"}),
    # not a list: a mapped type's parent returned something that has no items
    (UNSTARTED, FAILED): frozenset({"not sendable", "not a list"}),
    (FAILED, UNSTARTED): frozenset({"retry", "rerun", "resume"}),
    (ABORTED, UNSTARTED): frozenset({"retry", "rerun", "resume"}),
    # resume: its result was not journaled and a child that must run needs it;
    # result lost: its result never reached the store (its engine died first) or its file is gone
    (FINISHED, UNSTARTED): frozenset({"rerun", "resume", "result lost"}),
}

# The reason of every move of a mapped job type's own status: it follows its items (mapped_status).
ITEMS = "items"

# Why an unstarted job is waiting, as the display shows it.
_WAITING_DISPLAY = {
    "fault": RETRYING, "automatic retry": RETRYING, "engine lost": REQUEUED, "input lost": REQUEUED, "result lost": REQUEUED,
}


def mapped_status(counts: dict[str, int], items: int | None) -> str:
    """The status of a mapped job type whose items have the statuses ``counts`` (status -> how many).

    failed if an item failed, else aborted if one was aborted, else finished
    when all finished (none: finished with ``[]``), else started if one runs,
    else unstarted; unstarted while the items are not known (``items`` None).
    """
    if items is None:
        return UNSTARTED
    if counts.get(FAILED):
        return FAILED
    if counts.get(ABORTED):
        return ABORTED
    if counts.get(FINISHED, 0) == items:
        return FINISHED
    return STARTED if counts.get(STARTED) or counts.get(FINISHED) else UNSTARTED


def check_transition(old: str, new: str, reason: str, *, job: str | None = None) -> None:
    """Raise :class:`~overseer_nb.errors.TransitionError` unless ``old -> new`` for ``reason`` is allowed.

    ``job`` names the job in the message.
    """
    if reason == ITEMS and old != new and old in STATUSES and new in STATUSES:
        return  # a mapped type follows its items, whatever they do
    allowed = TRANSITIONS.get((old, new))
    who = "a job" if job is None else f"job {job!r}"
    if allowed is None:
        targets = sorted(n for o, n in TRANSITIONS if o == old)
        raise TransitionError(
            f"{who} cannot move from {old!r} to {new!r}; from {old!r} a job moves only to {targets}",
            job=job, old=old, new=new, reason=reason,
        )
    if reason not in allowed:
        raise TransitionError(
            f"{who} moves from {old!r} to {new!r} only for {sorted(allowed)}, not {reason!r}",
            job=job, old=old, new=new, reason=reason,
        )


def display_state(status: str, *, blocked: bool = False, waiting_reason: str | None = None,
                  cached: bool = False) -> str:
    """The display state of a job with stored ``status``.

    ``blocked``: some ancestor is failed or aborted. ``waiting_reason``: the reason
    of the transition that made an unstarted job unstarted again. ``cached``: a
    finished job that reused an earlier run's result.
    """
    if status == FINISHED and cached:
        return CACHED
    if status != UNSTARTED:
        return status
    if blocked:
        return BLOCKED
    return _WAITING_DISPLAY.get(waiting_reason or "", UNSTARTED)
