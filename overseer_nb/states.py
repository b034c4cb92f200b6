"""The state vocabulary: stored statuses, allowed moves, derived display states.

Overseer's five statuses are what is stored. Display states are derived here and
nowhere else, so the API, the journal, the widget's CSS classes and the docs
all use the same words.
"""

from __future__ import annotations

__all__ = [
    "UNSTARTED",
    "STARTED",
    "FINISHED",
    "FAILED",
    "ABORTED",
    "STATUSES",
    "BLOCKED",
    "RETRYING",
    "REQUEUED",
    "DISPLAY_STATES",
    "TRANSITIONS",
    "REASONS",
    "check_transition",
    "display_state",
]

UNSTARTED = "unstarted"
STARTED = "started"
FINISHED = "finished"
FAILED = "failed"
ABORTED = "aborted"
STATUSES = (UNSTARTED, STARTED, FINISHED, FAILED, ABORTED)

BLOCKED = "blocked"
RETRYING = "retrying"
REQUEUED = "requeued"
DISPLAY_STATES = STATUSES + (BLOCKED, RETRYING, REQUEUED)

# Every allowed move, with the reasons that may cause it. Overseer's own moves
# first; the last three are the user's retry, rerun and a resume after a restart.
TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
    (UNSTARTED, STARTED): frozenset({"engine took it"}),
    (STARTED, FINISHED): frozenset({"returned"}),
    (STARTED, FAILED): frozenset(
        {"exception", "timeout", "faulted too often", "engine lost too often", "not sendable"}
    ),
    # resume: the kernel that ran it stopped mid-job
    (STARTED, UNSTARTED): frozenset({"fault", "engine lost", "automatic retry", "resume"}),
    (STARTED, ABORTED): frozenset({"abort", "cancel", "parent aborted"}),
    (UNSTARTED, ABORTED): frozenset({"abort", "cancel", "parent aborted"}),
    (UNSTARTED, FAILED): frozenset({"not sendable"}),
    (FAILED, UNSTARTED): frozenset({"retry", "rerun", "resume"}),
    (ABORTED, UNSTARTED): frozenset({"retry", "rerun", "resume"}),
    # resume: its result was not journaled and a child that must run needs it
    (FINISHED, UNSTARTED): frozenset({"rerun", "resume"}),
}

REASONS = frozenset().union(*TRANSITIONS.values())

# Why an unstarted job is waiting, as the display shows it.
_WAITING_DISPLAY = {"fault": RETRYING, "automatic retry": RETRYING, "engine lost": REQUEUED}


def check_transition(old: str, new: str, reason: str) -> None:
    """Raise ``ValueError`` unless ``old -> new`` for ``reason`` is an allowed move."""
    allowed = TRANSITIONS.get((old, new))
    if allowed is None:
        raise ValueError(f"a job cannot move from {old!r} to {new!r}")
    if reason not in allowed:
        raise ValueError(
            f"a job moves from {old!r} to {new!r} only for {sorted(allowed)}, not {reason!r}"
        )


def display_state(status: str, *, blocked: bool = False, waiting_reason: str | None = None) -> str:
    """The display state of a job with stored ``status``.

    ``blocked``: some ancestor is failed or aborted. ``waiting_reason``: the reason
    of the transition that made an unstarted job unstarted again.
    """
    if status != UNSTARTED:
        return status
    if blocked:
        return BLOCKED
    return _WAITING_DISPLAY.get(waiting_reason or "", UNSTARTED)
