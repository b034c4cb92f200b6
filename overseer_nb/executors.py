"""The executor seam: where attempts run.

An executor takes :class:`Task`\\ s and reports back through one callable,
``report(event)``, from whatever thread it likes; the run loop turns the
reports into state-machine events. :class:`ThreadExecutor` runs attempts in
this process (for tests of the state machine and for quick local work);
``overseer_nb._ipp.IPyParallelExecutor`` runs them on an ipyparallel cluster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .records import ErrorInfo, Outcome

__all__ = ["Task", "Started", "Ended", "EngineLost", "ClusterLost", "EnginesChanged", "Executor", "ThreadExecutor", "outcome_from_report"]


@dataclass(frozen=True)
class Task:
    """One attempt to run: the job, its attempt number and ``run_attempt``'s arguments."""

    job: str
    attempt: int
    call_args: tuple


@dataclass(frozen=True)
class Started:
    job: str
    attempt: int
    engine: Any
    at: float


@dataclass(frozen=True)
class Ended:
    job: str
    attempt: int
    outcome: Outcome
    at: float


@dataclass(frozen=True)
class EngineLost:
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
    count: int
    at: float


Report = Callable[[Any], None]


class Executor:
    """Base of executors; see the module docstring."""

    def start(self, report: Report) -> None:
        """Begin reporting events to ``report``."""
        self.report = report

    def submit(self, task: Task) -> None:
        raise NotImplementedError

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


def outcome_from_report(report: dict, engine: Any) -> Outcome:
    """An :class:`Outcome` from the dict ``run_attempt`` returns."""
    err = report.get("error")
    return Outcome(
        kind=report["kind"],
        result=report.get("result"),
        error=ErrorInfo(err["ename"], err["evalue"], err.get("traceback", "")) if err else None,
        message=report.get("message", ""),
        silent=report.get("silent", False),
        stdout=report.get("stdout", ""),
        stderr=report.get("stderr", ""),
        engine=engine,
        started=report.get("started"),
        ended=report.get("ended"),
    )


class ThreadExecutor(Executor):
    """Runs attempts on threads of this process.

    Handlers run in this interpreter on the objects themselves (nothing is
    pickled but results), so closures over locks or lists work; an interrupt
    cannot stop a running handler (its late result is ignored). Each job's
    output is captured on its own thread; what other threads print is untouched.
    """

    in_process = True  # handlers and args are passed as objects, not pickles

    def __init__(self, workers: int = 2):
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="overseer-job")
        self._futures: dict[tuple[str, int], Future] = {}
        self._lock = threading.Lock()

    def submit(self, task: Task) -> None:
        from ._engine import run_attempt

        def call() -> None:
            engine = threading.current_thread().name
            self.report(Started(task.job, task.attempt, engine, time.time()))
            result = run_attempt(*task.call_args)
            self.report(Ended(task.job, task.attempt, outcome_from_report(result, engine), time.time()))

        with self._lock:
            self._futures[(task.job, task.attempt)] = self._pool.submit(call)

    def withdraw(self, job: str, attempt: int) -> None:
        with self._lock:
            fut = self._futures.pop((job, attempt), None)
        if fut is not None:
            fut.cancel()

    def engine_count(self) -> int:
        return self.workers

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
