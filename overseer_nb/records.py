"""What a run knows about each job: ``JobRecord``, its ``Attempt``s, their ``ErrorInfo``."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .states import FINISHED, UNSTARTED

__all__ = [
    "ErrorInfo", "Attempt", "JobRecord", "Outcome", "NOT_STORED", "NOT_STORED_BYTES", "UnloadableResult",
    "StoredResult", "ResultData", "ItemOf", "ItemsOf",
]


@runtime_checkable
class StoredResult(Protocol):
    """A result kept outside the kernel (in the result store): what the kernel holds instead of its bytes.

    ``overseer_nb.store.ResultRef`` is the one the package makes; the core only
    passes it along and asks it for its value when the user does.
    """

    path: str
    nbytes: int
    type_name: str
    summary: str
    engine: Any

    def load(self) -> Any: ...

    def exists(self) -> bool: ...

    def to_json(self) -> dict[str, Any]: ...


# A finished job's result as a run holds it: its pickle (a small result, or one
# relayed through the kernel), a StoredResult, or None (no result).
ResultData = bytes | StoredResult | None


@dataclass(frozen=True)
class ItemOf:
    """An input that is item ``index`` of a parent's result (what an item of a mapped type gets)."""

    data: Any  # the parent's ResultData
    index: int
    digest: str | None = None  # the item's own content digest, when the parent's result has them


@dataclass(frozen=True)
class ItemsOf:
    """An input that is the list of a mapped parent's items' results, in order."""

    items: tuple[Any, ...]  # each item's ResultData


@dataclass(frozen=True)
class ErrorInfo:
    """An error a job ended with: exception name, value and plain-text traceback.

    frames: the error's stack as its engine reported it, until the kernel
    renders ``traceback`` from it (:func:`overseer_nb.tracebacks.render_traceback`'s
    sections); empty once rendered, and for errors the kernel made itself.
    """

    ename: str
    evalue: str
    traceback: str = ""
    frames: tuple = field(default=(), repr=False, compare=False)

    def __str__(self) -> str:
        return f"{self.ename}: {self.evalue}" if self.evalue else self.ename


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, as reported from its engine.

    kind: one of :data:`~overseer_nb.states.OUTCOME_KINDS`: ``ok``, ``fault``,
    ``abort``, ``error``, ``interrupted``, ``lost`` (its engine died) or
    ``unsendable`` (it never reached an engine) or ``input_lost`` (a parent's
    stored result could not be read; ``lost_inputs`` names those parents).
    result: the pickled value, or where it is stored.
    """

    kind: str
    result: ResultData = None
    error: ErrorInfo | None = None
    message: str = ""
    silent: bool = False
    stdout: str = ""
    stderr: str = ""
    engine: Any = None
    started: float | None = None
    ended: float | None = None
    lost_inputs: tuple[str, ...] = ()
    length: int | None = None  # len() of a result that is a list, tuple or range (None: it is not one)
    type_name: str = ""  # the result's type, for the message when a mapped type needs a list
    item_digests: tuple[str, ...] | None = None  # each item's content digest (with the cache on)


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
    code: str | None = None  # digest of the handler's code it was sent with (None: not known, e.g. loaded)

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
    """Everything known about one job of a run (a live view while the run goes on).

    An item of a mapped type has its ``index`` (``train[3]``: type ``train``,
    index 3). A mapped type itself (``mapped``) lists its ``items`` once they are
    known; its status sums theirs up and its result is the list of theirs.
    """

    type: str
    status: str = UNSTARTED
    display_state: str = UNSTARTED
    attempts: list[Attempt] = field(default_factory=list)
    message: str = ""
    result_data: ResultData = field(default=None, repr=False)
    index: int | None = None
    mapped: bool = False
    items: list[JobRecord] = field(default_factory=list, repr=False)
    cached_from: str | None = None  # the run whose result it reused (None: it ran, or has not yet)
    length: int | None = field(default=None, repr=False)  # len() of its result if a list, tuple or range
    item_digests: tuple[str, ...] | None = field(default=None, repr=False)  # of its items, with the cache on
    fingerprint: str | None = field(default=None, repr=False)  # what its result depends on (with the cache on)
    fingerprint_parts: dict | None = field(default=None, repr=False)
    explanation: str = field(default="", repr=False)  # why it ran or was reused (run.explain)

    @property
    def key(self) -> str:
        """The job's name in ``run.jobs``: its type, or ``type[index]`` for an item."""
        return self.type if self.index is None else f"{self.type}[{self.index}]"

    @property
    def result(self) -> Any:
        """The job's result (None unless finished), read from the store if it is kept there.

        A mapped type's result is the list of its items' results.
        """
        if self.mapped:
            return [item.result for item in self.items] if self.status == FINISHED else None
        data = self.result_data
        if self.status != FINISHED or data is None:
            return None
        try:
            if isinstance(data, (bytes, bytearray)):
                return pickle.loads(data)
            return data.load()
        except Exception as exc:  # e.g. its class is in a module this kernel lacks, or its file is gone
            return UnloadableResult(self.type, exc)

    @property
    def stored(self) -> StoredResult | None:
        """Where the result is kept in the store (None: it is inline, or there is none)."""
        data = self.result_data
        return None if data is None or isinstance(data, (bytes, bytearray)) else data

    @property
    def engine(self) -> Any:
        """The engine of the latest attempt, or None."""
        return self.attempts[-1].engine if self.attempts else None

    @property
    def error(self) -> ErrorInfo | None:
        """The error of the latest attempt, or None."""
        return self.attempts[-1].error if self.attempts else None
