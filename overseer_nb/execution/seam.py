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
from ..states import OUTCOME_ERROR, OUTCOME_FENCED, OUTCOME_INTERRUPTED, OUTCOME_LOST
from ..store import ResultRef

if TYPE_CHECKING:
    from .engine import AttemptReport

__all__ = ["Task", "Executor", "Detached", "Report", "outcome_from_report", "infrastructure_outcome"]


@dataclass(frozen=True)
class Task:
    """One attempt to run, as the run hands it to an executor.

    Each executor ships it its own way: an in-process one calls the stages
    with ``args`` as they are; a cluster one pickles the stages (once per
    distinct set of functions) and sends ``args_blob``.
    """

    job: str  # the job's name: its type, or ``train[3]`` for an item of a mapped type
    attempt: int
    run_id: str
    stages: tuple[Any, Any, Any]  # (pre_process, process, post_process) as they are now
    args: Mapping[str, Any]
    args_blob: bytes  # ``args`` pickled once per run
    inputs: Mapping[str, bytes | dict | None]  # parent job type -> its pickled result, or where it is stored
    max_result_bytes: int | None
    max_output_chars: int  # of stdout and of stderr each, kept where the attempt runs
    # where its result goes: {"root", "inline", "memory", "hold"} (engine.run_attempt); None: back inline
    store: Mapping[str, Any] | None = None
    prefer: Any = None  # the engine holding its biggest input: run it there if that engine is free
    prefer_wait: bool = False  # that input is big: run it there even behind one job
    index: int | None = None  # an item of a mapped type: which one (``job.index``)
    after: tuple[tuple[str, int], ...] = ()  # attempts (job, attempt) of this run to start after (eager dispatch)
    follow: tuple[tuple[str, int], ...] = ()  # of those, the one whose engine it must run on (it holds the input)

    @property
    def id(self) -> str:
        """The job's id as a handler sees it (``job.id``)."""
        return f"{self.run_id}:{self.job}"

    @property
    def label(self) -> str:
        """Its label on the cluster's hub (ipyparallel's ``label``): run, job and attempt, for a later kernel."""
        return f"{LABEL}/{self.run_id}/{self.job}/{self.attempt}"


Report = Callable[[Any], None]
LABEL = "overseer_nb"  # the start of every task label


class Executor:
    """Base of executors; see the module docstring."""

    connected = True  # False for a run loaded from the journal: it has nowhere to run yet
    # True if a task may be sent before its parents end (``Task.after``): the executor starts it after them
    dependencies = False

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

    def sent_tasks(self, run_id: str) -> dict[tuple[str, int], tuple[str, bool]]:
        """Every task sent for run ``run_id`` that this executor's cluster knows: (job, attempt) -> (task id, ran).

        ``ran``: an engine took it. This base knows none.
        """
        return {}

    def interrupt(self, job: str, attempt: int, engine: Any, kill_after: float) -> None:
        """Interrupt a running attempt (best effort)."""

    def withdraw(self, job: str, attempt: int) -> None:
        """Drop a submitted attempt that has not started (best effort)."""

    def store_problem(self, root: str) -> str | None:
        """Why results cannot go through the store at ``root`` here (None: every engine can use it).

        '' relays them through the kernel without a word: this base, and
        executors that run jobs in the kernel's own process, do so.
        """
        return ""

    def release(self, engine: Any, paths: list[str]) -> None:
        """``engine`` may forget the stored results at ``paths`` (no job needs them in memory now)."""

    def release_run(self, run_id: str) -> None:
        """Every engine may forget the results of run ``run_id`` it holds in memory."""

    def queue_limit(self) -> int | None:
        """Most attempts to have out at once (queued or running); None: no limit."""
        return None

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
    ref = report.get("result_ref")
    return Outcome(
        kind=report["kind"],
        result=ResultRef.from_json({**ref, "engine": engine}) if ref else report["result"],
        lost_inputs=tuple(report.get("lost_inputs") or ()),
        length=report.get("length"),
        item_digests=tuple(report.get("item_digests") or ()) or None,
        type_name=report.get("type_name", ""),
        error=ErrorInfo(err["ename"], err["evalue"], err["traceback"], tuple(err.get("stack") or ())) if err else None,
        message=report["message"],
        silent=report["silent"],
        stdout=report["stdout"],
        stderr=report["stderr"],
        engine=engine,
        started=report["started"],
        ended=report["ended"],
    )


def infrastructure_outcome(exc: BaseException, engine: Any) -> Outcome:
    """The outcome of an attempt whose task failed outside ``run_attempt``.

    An engine that died is ``lost`` however ipyparallel says so: an
    ``EngineError``, or (a load-balanced task) a ``RemoteError`` named ``EngineError``.
    """
    from ipyparallel import error

    if isinstance(exc, error.EngineError) or (isinstance(exc, error.RemoteError) and exc.ename == "EngineError"):
        who = f"engine {engine}" if engine is not None else "its engine"
        return Outcome(OUTCOME_LOST, engine=engine, message=f"{who} was lost while running the job")
    if isinstance(exc, error.TaskAborted):
        return Outcome(OUTCOME_INTERRUPTED, engine=engine, message="withdrawn before it started")
    if isinstance(exc, error.ImpossibleDependency) or (
        isinstance(exc, error.RemoteError) and exc.ename in ("ImpossibleDependency", "InvalidDependency")
    ):  # sent ahead of a task that failed on the cluster (its engine died): it never ran
        return Outcome(OUTCOME_FENCED, engine=engine, message="a parent it was sent ahead of did not finish")
    if isinstance(exc, error.RemoteError):
        tb = exc.traceback
        info = ErrorInfo(exc.ename, exc.evalue, "\n".join(tb) if isinstance(tb, list) else str(tb or ""))
        if exc.ename in ("ModuleNotFoundError", "ImportError") and "overseer_nb" in str(exc.evalue):
            info = ErrorInfo(
                exc.ename,
                f"{exc.evalue}: the engines cannot import overseer_nb; install it in the "
                "environment the engines run in",
                info.traceback,
            )
        return Outcome(OUTCOME_ERROR, error=info, engine=engine)
    return Outcome(OUTCOME_ERROR, error=ErrorInfo(type(exc).__name__, str(exc)), engine=engine)
