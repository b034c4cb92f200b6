"""Running attempts on an ipyparallel cluster.

One task per attempt on a load-balanced view. The engine that takes a task is
learned from its first IOPub message, so a job shows ``started`` only when an
engine really runs it, and an engine's death is acted on as soon as the
controller unregisters it instead of after ipyparallel's 5 s grace period.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from ._engine import run_attempt
from .executors import Ended, EngineLost, EnginesChanged, Executor, Started, Task, outcome_from_report
from .records import ErrorInfo, Outcome

__all__ = ["IPyParallelExecutor"]

log = logging.getLogger("overseer_nb")


class _Flight:
    """One submitted attempt: its AsyncResult and, once known, its engine."""

    __slots__ = ("task", "ar", "engine", "started")

    def __init__(self, task: Task, ar: Any):
        self.task, self.ar = task, ar
        self.engine: int | None = None
        self.started = False


class IPyParallelExecutor(Executor):
    """Runs attempts on the engines of an ipyparallel ``Client``."""

    def __init__(self, client: Any, cluster: Any = None):
        self.client = client
        self.cluster = cluster
        self.view = client.load_balanced_view()
        self._lock = threading.Lock()
        self._flights: dict[tuple[str, int], _Flight] = {}
        self._closed = False

    def start(self, report) -> None:
        super().start(report)
        self.client._registration_callbacks.append(self._on_registration)

    # -- submitting ---------------------------------------------------------
    def submit(self, task: Task) -> None:
        ar = self.view.apply_async(run_attempt, *task.call_args)
        flight = _Flight(task, ar)
        key = (task.job, task.attempt)
        with self._lock:
            self._flights[key] = flight
        msg_future = ar._children[0]
        msg_future.iopub_callbacks.append(lambda msg: self._on_iopub(flight, msg))
        # the engine may have spoken before the callback was in place
        md = self.client.metadata.get(ar.msg_ids[0]) or {}
        if md.get("engine_id") is not None:
            self._mark_started(flight, md["engine_id"])
        ar.add_done_callback(lambda _f: self._on_done(flight))

    def _on_iopub(self, flight: _Flight, msg: dict) -> None:
        if flight.started:
            return
        uuid = msg.get("metadata", {}).get("engine")
        engine = self.client._engines.get(uuid) if uuid else None
        if engine is not None:
            self._mark_started(flight, engine)

    def _mark_started(self, flight: _Flight, engine: int) -> None:
        with self._lock:
            if flight.started:
                return
            flight.started, flight.engine = True, engine
        self.report(Started(flight.task.job, flight.task.attempt, engine, time.time()))

    def _on_done(self, flight: _Flight) -> None:
        key = (flight.task.job, flight.task.attempt)
        with self._lock:
            self._flights.pop(key, None)
        ar = flight.ar
        engine = flight.engine
        try:
            report = ar.get(0)
            engine = ar.engine_id if engine is None else engine
            outcome = outcome_from_report(report, engine)
        except Exception as exc:  # an infrastructure failure, not the handler's
            outcome = self._infrastructure_outcome(exc, engine)
        self.report(Ended(flight.task.job, flight.task.attempt, outcome, time.time()))

    def _infrastructure_outcome(self, exc: BaseException, engine: Any) -> Outcome:
        from ipyparallel import error

        if isinstance(exc, error.EngineError):
            return Outcome("lost", engine=engine, message=str(exc))
        if isinstance(exc, error.TaskAborted):
            return Outcome("interrupted", engine=engine, message="withdrawn before it started")
        if isinstance(exc, error.RemoteError):
            info = ErrorInfo(exc.ename, exc.evalue, "\n".join(exc.traceback or []) if isinstance(exc.traceback, list) else str(exc.traceback or ""))
            if exc.ename in ("ModuleNotFoundError", "ImportError") and "overseer_nb" in str(exc.evalue):
                info = ErrorInfo(
                    exc.ename,
                    f"{exc.evalue}: the engines cannot import overseer_nb; install it "
                    "(pip install overseer_nb) in the environment the engines run in",
                    info.traceback,
                )
            return Outcome("error", error=info, engine=engine)
        return Outcome("error", error=ErrorInfo(type(exc).__name__, str(exc)), engine=engine)

    # -- engines coming and going --------------------------------------------
    def _on_registration(self, event: dict) -> None:
        if self._closed:
            return
        now = time.time()
        if event.get("event") == "unregister":
            engine = int(event["id"])
            partial = {}
            with self._lock:
                flights = [f for f in self._flights.values() if f.engine == engine]
            for f in flights:
                md = self.client.metadata.get(f.ar.msg_ids[0]) or {}
                partial[(f.task.job, f.task.attempt)] = (md.get("stdout") or "", md.get("stderr") or "")
            self.report(EngineLost(engine, now, f"engine {engine} was lost while running the job", partial))
        self.report(EnginesChanged(len(self.client.ids), now))

    def engine_count(self) -> int:
        return len(self.client.ids)

    # -- stopping work -----------------------------------------------------------
    def interrupt(self, job: str, attempt: int, engine: Any, kill_after: float) -> None:
        if engine is None:
            return
        try:
            self.client.send_signal(signal.SIGINT, targets=[engine], block=False)
        except Exception as exc:
            log.warning("could not interrupt engine %s: %s", engine, exc)
            return
        timer = threading.Timer(kill_after, self._kill_if_busy, (job, attempt, engine))
        timer.daemon = True
        timer.start()

    def _kill_if_busy(self, job: str, attempt: int, engine: int) -> None:
        with self._lock:
            flight = self._flights.get((job, attempt))
        if flight is None or flight.engine != engine or engine not in self.client.ids:
            return
        log.warning("engine %s did not stop job %r after an interrupt; killing it", engine, job)
        try:
            self.client.send_signal(signal.SIGKILL, targets=[engine], block=False)
        except Exception as exc:
            log.warning("could not kill engine %s: %s", engine, exc)

    def withdraw(self, job: str, attempt: int) -> None:
        with self._lock:
            flight = self._flights.get((job, attempt))
        if flight is not None and not flight.started:
            try:
                self.view.abort(flight.ar, block=False)
            except Exception as exc:
                log.debug("could not withdraw %r: %s", job, exc)

    def close(self) -> None:
        self._closed = True
        try:
            self.client._registration_callbacks.remove(self._on_registration)
        except ValueError:
            pass

    def describe(self) -> str:
        return f"ipyparallel cluster with {len(self.client.ids)} engines"
