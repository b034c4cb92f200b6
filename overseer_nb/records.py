"""What a run knows about each job: ``JobRecord``, its ``Attempt``s, their ``ErrorInfo``."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

from .states import FINISHED, UNSTARTED

__all__ = ["ErrorInfo", "Attempt", "JobRecord", "Outcome", "NOT_STORED", "NOT_STORED_BYTES", "UnloadableResult"]


@dataclass(frozen=True)
class ErrorInfo:
    """An error a job ended with: exception name, value and plain-text traceback."""

    ename: str
    evalue: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.ename}: {self.evalue}" if self.evalue else self.ename


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, as reported from its engine.

    kind: one of :data:`~overseer_nb.states.OUTCOME_KINDS`: ``ok``, ``fault``,
    ``abort``, ``error``, ``interrupted``, ``lost`` (its engine died) or
    ``unsendable`` (it never reached an engine).
    """

    kind: str
    result: bytes | None = None
    error: ErrorInfo | None = None
    message: str = ""
    silent: bool = False
    stdout: str = ""
    stderr: str = ""
    engine: Any = None
    started: float | None = None
    ended: float | None = None


@dataclass
class Attempt:
    """One try of a job on an engine.

    outcome: None while queued or running, then one of
    :data:`~overseer_nb.states.ATTEMPT_OUTCOMES`: ``finished``, ``failed``,
    ``fault``, ``aborted``, ``timeout``, ``lost``, ``retry`` (failed, retried
    automatically) or ``cancelled``.
    """

    number: int
    engine: Any = None
    start: float | None = None
    end: float | None = None
    stdout: str = ""
    stderr: str = ""
    error: ErrorInfo | None = None
    outcome: str | None = None
    task: str | None = None  # the cluster's id of the task that ran it: a restarted kernel asks after it

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, None while it runs or if it never started."""
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


class _NotStored:
    def __repr__(self) -> str:
        return "<result not stored>"

    def __reduce__(self) -> str:
        return "NOT_STORED"  # unpickles as the one NOT_STORED, so ``is`` works


NOT_STORED = _NotStored()

# What a loaded run holds as the result of a finished job whose result the
# journal did not store: unpickles to NOT_STORED, so run.results says so.
NOT_STORED_BYTES = pickle.dumps(NOT_STORED)


class UnloadableResult:
    """What a finished job's result reads as in a kernel that cannot unpickle it; ``error`` says why."""

    def __init__(self, job: str, error: BaseException):
        self.job, self.error = job, error

    def __repr__(self) -> str:
        return f"<result of {self.job!r} cannot be loaded here: {type(self.error).__name__}: {self.error}>"


@dataclass
class JobRecord:
    """Everything known about one job of a run (a live view while the run goes on)."""

    type: str
    status: str = UNSTARTED
    display_state: str = UNSTARTED
    attempts: list[Attempt] = field(default_factory=list)
    message: str = ""
    result_bytes: bytes | None = field(default=None, repr=False)

    @property
    def result(self) -> Any:
        """The job's result (None unless finished)."""
        if self.status != FINISHED or self.result_bytes is None:
            return None
        try:
            return pickle.loads(self.result_bytes)
        except Exception as exc:  # e.g. its class is in a module this kernel lacks
            return UnloadableResult(self.type, exc)

    @property
    def engine(self) -> Any:
        """The engine of the latest attempt, or None."""
        return self.attempts[-1].engine if self.attempts else None

    @property
    def error(self) -> ErrorInfo | None:
        """The error of the latest attempt, or None."""
        return self.attempts[-1].error if self.attempts else None
