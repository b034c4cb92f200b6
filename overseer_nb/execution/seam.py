"""The executor seam: where attempts run.

An executor takes :class:`Task`\\ s and reports back through one callable,
``report(event)``, from whatever thread it likes; the run loop turns the
reports (:mod:`overseer_nb.events`) into state-machine steps.
:class:`~overseer_nb.execution.threads.ThreadExecutor` runs attempts in this
process (for tests of the state machine and for quick local work);
:class:`~overseer_nb.execution.ipp.IPyParallelExecutor` runs them on an
ipyparallel cluster; :class:`Detached` stands in for a run loaded from the
journal, which has nowhere to run until it is resumed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import RunError
from ..records import ErrorInfo, Outcome

if TYPE_CHECKING:
    from .engine import AttemptReport

__all__ = ["Task", "Executor", "Detached", "Report", "outcome_from_report"]


@dataclass(frozen=True)
class Task:
    """One attempt to run, as the run hands it to an executor.

    Each executor ships it its own way: an in-process one calls the stages
    with ``args`` as they are; a cluster one pickles the stages (once per
    distinct set of functions) and sends ``args_blob``.
    """

    job: str
    attempt: int
    run_id: str
    stages: tuple[Any, Any, Any]  # (pre_process, process, post_process) as they are now
    args: Mapping[str, Any]
    args_blob: bytes  # ``args`` pickled once per run
    inputs: Mapping[str, bytes | None]  # parent job type -> its pickled result
    max_result_bytes: int
    max_output_chars: int  # of stdout and of stderr each, kept where the attempt runs

    @property
    def id(self) -> str:
        """The job's id as a handler sees it (``job.id``)."""
        return f"{self.run_id}:{self.job}"


Report = Callable[[Any], None]


class Executor:
    """Base of executors; see the module docstring."""

    connected = True  # False for a run loaded from the journal: it has nowhere to run yet

    def start(self, report: Report) -> None:
        """Begin reporting events to ``report``."""
        self.report = report

    def submit(self, task: Task) -> None:
        """Send ``task``; report ``Started``/``Ended`` for it later.

        Raises :class:`~overseer_nb.errors.HandlerError` naming the job if its
        handler cannot be shipped, anything else if it cannot be submitted.
        """
        raise NotImplementedError

    def handlers_changed(self) -> None:
        """Ship every handler anew from now on (a global fixed in a cell goes out again)."""

    def recover(self, tasks: Mapping[tuple[str, int], tuple[str, str]]) -> dict[tuple[str, int], Any]:
        """Of attempts an earlier kernel sent ((job, attempt) -> (task id, run id)), those still known here.

        Returns (job, attempt) -> the engine that took it (None if not known);
        once started, the executor reports what becomes of each. This base
        knows none: they all run again.
        """
        return {}

    def interrupt(self, job: str, attempt: int, engine: Any, kill_after: float) -> None:
        """Interrupt a running attempt (best effort)."""

    def withdraw(self, job: str, attempt: int) -> None:
        """Drop a submitted attempt that has not started (best effort)."""

    def engine_count(self) -> int | None:
        """How many engines can take work now (None: unknown)."""
        return None

    def engines_coming(self) -> bool:
        """True while new engines are being started (a run with none waits for them)."""
        return False

    def close(self) -> None:
        """Stop reporting; release what was opened for this run."""


class Detached(Executor):
    """The executor of a run loaded from the journal: it has no cluster until resumed."""

    connected = False

    def submit(self, task: Task) -> None:
        raise RunError(
            "this run was loaded from the journal and has no cluster; "
            "run.resume(handlers) runs what did not finish"
        )


def outcome_from_report(report: AttemptReport, engine: Any) -> Outcome:
    """The :class:`Outcome` of the report :func:`~overseer_nb.execution.engine.run_attempt` returned."""
    err = report["error"]
    return Outcome(
        kind=report["kind"],
        result=report["result"],
        error=ErrorInfo(err["ename"], err["evalue"], err["traceback"]) if err else None,
        message=report["message"],
        silent=report["silent"],
        stdout=report["stdout"],
        stderr=report["stderr"],
        engine=engine,
        started=report["started"],
        ended=report["ended"],
    )
