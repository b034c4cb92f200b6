"""Every error overseer_nb raises, in one place.

Each class subclasses the builtin category a caller would catch (``ValueError``
for bad graphs, ``TypeError`` for bad handlers, ``RuntimeError`` for a run or a
cluster that cannot do what was asked). Messages name the bad value and the fix.
"""

from __future__ import annotations

__all__ = [
    "OverseerError",
    "GraphError",
    "CycleError",
    "UnknownParentError",
    "SelfDependencyError",
    "JobNameError",
    "ParentsError",
    "HandlerError",
    "MissingHandlerError",
    "InvalidHandlerError",
    "UnknownHandlerError",
    "HandlerOptionError",
    "RunError",
    "UnknownJobError",
    "JobRunningError",
    "ClusterError",
    "ArgsError",
    "JournalError",
    "RunOwnerError",
    "OptionError",
    "UnknownOptionError",
    "TransitionError",
    "DotNotFoundError",
]


class OverseerError(Exception):
    """Base class of every overseer_nb error."""


class GraphError(OverseerError, ValueError):
    """The job graph is not valid; nothing ran."""


class CycleError(GraphError):
    """The graph has a cycle; ``cycle`` holds its path, first node repeated last."""

    def __init__(self, cycle: list[str]):
        self.cycle = list(cycle)
        path = " -> ".join(repr(c) for c in self.cycle)
        super().__init__(
            f"the job graph has a cycle: {path} (each job lists the next as a parent). "
            "Remove one of these parent links so that every job can eventually start."
        )


class UnknownParentError(GraphError):
    """A job lists a parent that is not a job type of the graph."""

    def __init__(self, job: str, parent: str, suggestion: str | None):
        self.job, self.parent, self.suggestion = job, parent, suggestion
        hint = f"did you mean {suggestion!r}? " if suggestion else ""
        super().__init__(
            f"job {job!r} lists parent {parent!r}, which is not a job of this graph; "
            f"{hint}Add {parent!r} as a job or fix the name."
        )


class SelfDependencyError(GraphError):
    """A job lists itself as its own parent."""

    def __init__(self, job: str):
        self.job = job
        super().__init__(
            f"job {job!r} lists itself as a parent; a job cannot wait for itself. "
            f"Remove {job!r} from its own parent list."
        )


class JobNameError(GraphError):
    """A job type (or a parent name) is empty or not a string."""


class ParentsError(GraphError):
    """A job's parents are not given as a list of job type names."""


class HandlerError(OverseerError, TypeError):
    """The handlers do not fit the graph; nothing ran."""


class MissingHandlerError(HandlerError):
    """One or more job types of the graph have no handler."""

    def __init__(self, missing: list[str]):
        self.missing = list(missing)
        names = ", ".join(repr(m) for m in self.missing)
        super().__init__(
            f"no handler for job type{'s' if len(missing) > 1 else ''} {names}. "
            "Add a function f(job) (or a lifecycle dict with 'process') for each, "
            "keyed by its job type."
        )


class InvalidHandlerError(HandlerError):
    """A handler is not a function or a lifecycle mapping, or has the wrong shape."""


class UnknownHandlerError(HandlerError):
    """The handlers name a job type that is not in the graph (a typo, most often)."""


class RunError(OverseerError, RuntimeError):
    """A run cannot do what was asked (nothing was changed)."""


class UnknownJobError(RunError, KeyError):
    """A job type named in a call is not part of the run's graph."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class JobRunningError(RunError):
    """A retry or rerun names a job that is running right now."""


class ClusterError(OverseerError, RuntimeError):
    """The cluster cannot be reached, started or used."""


class ArgsError(OverseerError, ValueError):
    """The run's ``args`` cannot be used (not a dict, or not picklable)."""


class JournalError(RunError):
    """The run journal cannot be opened, read or written (the run submits nothing more)."""


class RunOwnerError(JournalError):
    """Another live process owns the run in the journal, so this one may not resume or record it.

    ``run_id``, ``host`` and ``pid`` name the run and its owner.
    """

    def __init__(self, message: str, *, run_id: str, host: str, pid: int | None):
        self.run_id, self.host, self.pid = run_id, host, pid
        super().__init__(message)


class OptionError(OverseerError, ValueError):
    """A run option, job option or harness argument has the wrong type or range."""


class UnknownOptionError(OptionError, TypeError):
    """An option name that does not exist (as Python says of an unknown keyword)."""


class HandlerOptionError(InvalidHandlerError, OptionError):
    """A handler's own option (``@ov.handler(..., timeout=...)``, a lifecycle key) has the wrong type or range."""


class TransitionError(OverseerError, ValueError):
    """A job was asked to move between statuses in a way the state machine forbids.

    ``job``, ``old``, ``new`` and ``reason`` name the move; this is a bug in
    overseer_nb, not in the user's code.
    """

    def __init__(self, message: str, *, job: str | None = None, old: str = "", new: str = "", reason: str = ""):
        self.job, self.old, self.new, self.reason = job, old, new, reason
        super().__init__(message)


class DotNotFoundError(OverseerError, RuntimeError):
    """The Graphviz ``dot`` program is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "the Graphviz 'dot' program is not installed, so the graph cannot be drawn; "
            "install it: apt-get install graphviz (Debian/Ubuntu), brew install graphviz "
            "(macOS), conda install graphviz, or add 'graphviz' to binder/apt.txt"
        )
