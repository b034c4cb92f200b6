"""What the run loop feeds the state machine: executor events and user commands.

Plain frozen dataclasses, pure like the machine: an executor reports events
(from any thread; the run loop applies them one at a time), the user's calls
on a run become commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .records import Outcome

__all__ = [
    "Started",
    "Ended",
    "EngineLost",
    "ClusterLost",
    "EnginesChanged",
    "ExecutorEvent",
    "Retry",
    "Rerun",
    "Cancel",
    "Abort",
    "Resume",
    "Command",
]


@dataclass(frozen=True)
class Started:
    """An engine took attempt ``attempt`` of ``job``; ``task``: the cluster's id of it (ipyparallel's msg_id)."""

    job: str
    attempt: int
    engine: Any
    at: float
    task: str | None = None


@dataclass(frozen=True)
class Ended:
    """Attempt ``attempt`` of ``job`` ended with ``outcome``."""

    job: str
    attempt: int
    outcome: Outcome
    at: float


@dataclass(frozen=True)
class EngineLost:
    """``engine`` died; what its attempts printed before is in ``partial``."""

    engine: Any
    at: float
    message: str
    partial: dict  # (job, attempt) -> (stdout, stderr) printed before the loss


@dataclass(frozen=True)
class ClusterLost:
    """The cluster stopped answering (its controller died or is unreachable)."""

    at: float
    message: str


@dataclass(frozen=True)
class EnginesChanged:
    """The cluster has ``count`` engines now."""

    count: int
    at: float


ExecutorEvent = Started | Ended | EngineLost | ClusterLost | EnginesChanged


# -- user commands -----------------------------------------------------------------
@dataclass(frozen=True)
class Retry:
    """Retry every failed/aborted job (``job=None``) or the subtree rooted at ``job``."""

    job: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class Rerun:
    """Run ``job`` and all its descendants again, finished or not."""

    job: str
    dry_run: bool = False


@dataclass(frozen=True)
class Cancel:
    """Start nothing new, interrupt running jobs, abort every unfinished job."""


@dataclass(frozen=True)
class Abort:
    """Abort ``job`` and every unfinished job depending on it."""

    job: str


@dataclass(frozen=True)
class Resume:
    """After a restart: ``jobs`` (failed, aborted, finished or lost) go back to unstarted."""

    jobs: frozenset[str]


Command = Retry | Rerun | Cancel | Abort | Resume
