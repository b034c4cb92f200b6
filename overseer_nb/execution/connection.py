"""The connection all runs on one ipyparallel ``Client`` share.

One :class:`Connection` per client holds one registration callback, one
controller watchdog and one table of engine processes; each run's
:class:`~overseer_nb.execution.ipp.IPyParallelExecutor` (its *port*) submits
through it and gets its events back. The engine that takes a task is learned
from its first IOPub message, so a job shows ``started`` only when an engine
really runs it, and an engine's death is acted on as soon as the controller
unregisters it instead of after ipyparallel's 5 s grace period.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from ..events import ClusterLost, Ended, EngineLost, EnginesChanged, Started
from ..records import ErrorInfo, Outcome
from ..states import OUTCOME_ERROR, OUTCOME_INTERRUPTED, OUTCOME_LOST
from .engine import engine_identity, run_attempt
from .seam import Task, outcome_from_report

if TYPE_CHECKING:
    from .ipp import IPyParallelExecutor

__all__ = ["Connection", "queue_status", "kill_engine"]

log = logging.getLogger("overseer_nb")


def queue_status(client: Any, timeout: float) -> dict[int, dict]:
    """Engine id -> queue lengths, from the controller; ``TimeoutError`` if it does not answer.

    ``Client.queue_status()`` would wait forever for a dead controller.
    """
    reply = client._send(client._query_stream, "queue_request", content={"targets": None, "verbose": False})
    content = reply.result(timeout)["content"]
    return {int(k): v for k, v in content.items() if k.isdigit()}


def kill_engine(client: Any, engine: int, identity: tuple[int, str] | None, *, via_controller: bool) -> bool:
    """SIGKILL ``engine``: by pid if ``identity`` (pid, host) says it runs on this host.

    Otherwise, if ``via_controller``, ask the controller to send the signal.
    Returns whether a signal was sent; raises what ``os.kill`` or
    ``Client.send_signal`` raise.
    """
    pid, host = identity or (None, None)
    if pid is not None and host == socket.gethostname():
        os.kill(pid, signal.SIGKILL)
        return True
    if via_controller:
        client.send_signal(signal.SIGKILL, targets=[engine], block=False)
        return True
    return False


class _Flight:
    """One submitted attempt: its AsyncResult and, once known, its engine."""

    __slots__ = ("port", "task", "ar", "engine", "started")

    def __init__(self, port: IPyParallelExecutor, task: Task, ar: Any):
        self.port, self.task, self.ar = port, task, ar
        self.engine: int | None = None
        self.started = False


class Connection:
    """What all runs on one client share; see the module docstring."""

    ping_interval = 1.0
    ping_timeout = 5.0
    _by_client: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    _create_lock = threading.Lock()

    @classmethod
    def for_client(cls, client: Any, cluster: Any) -> Connection:
        with cls._create_lock:
            conn = cls._by_client.get(client)
            if conn is None or conn.lost:
                conn = cls._by_client[client] = cls(client)
            if cluster is not None:
                conn.cluster = cluster
            return conn

    def __init__(self, client: Any):
        self.client = client
        self.cluster: Any = None
        self.view = client.load_balanced_view()
        self.lost = False
        self._lock = threading.Lock()
        self._ports: weakref.WeakSet = weakref.WeakSet()
        self._flights: dict[tuple[int, str, int], _Flight] = {}
        self._identities: dict[int, tuple[int, str]] = {}  # engine -> (pid, host)
        self._watchdog: threading.Thread | None = None
        self._target = len(client.ids)  # engines to keep, when we may start some
        client._registration_callbacks.append(self._on_registration)
        for engine in list(client.ids):
            self._learn_identity(engine)

    def attach(self, port: IPyParallelExecutor) -> None:
        self._ports.add(port)

    def detach(self, port: IPyParallelExecutor) -> None:
        self._ports.discard(port)

    # -- submitting ----------------------------------------------------------------
    def submit(self, port: IPyParallelExecutor, task: Task, call: dict[str, Any]) -> None:
        """Send ``run_attempt(**call)`` for ``task`` to the load-balanced view."""
        self._ensure_watchdog()
        ar = self.view.apply_async(run_attempt, **call)
        flight = _Flight(port, task, ar)
        with self._lock:
            self._flights[(id(port), task.job, task.attempt)] = flight
        ar._children[0].iopub_callbacks.append(lambda msg: self._on_iopub(flight, msg))
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
        flight.port.report(Started(flight.task.job, flight.task.attempt, engine, time.time()))

    def _on_done(self, flight: _Flight) -> None:
        with self._lock:
            self._flights.pop((id(flight.port), flight.task.job, flight.task.attempt), None)
            flight.started = True  # an IOPub message arriving after the reply is old news
        engine = flight.engine
        try:
            report = flight.ar.get(0)
            engine = flight.ar.engine_id if engine is None else engine
            outcome = outcome_from_report(report, engine)
        except Exception as exc:  # an infrastructure failure, not the handler's
            outcome = _infrastructure_outcome(exc, engine)
        flight.port.report(Ended(flight.task.job, flight.task.attempt, outcome, time.time()))

    # -- engines coming and going ----------------------------------------------------
    def _learn_identity(self, engine: int) -> None:
        try:
            ar = self.client[engine].apply_async(engine_identity)
        except Exception:  # the engine left already
            return

        def store(_f: Any) -> None:
            try:
                self._identities[engine] = ar.get(0)
            except Exception:
                pass

        ar.add_done_callback(store)

    def _on_registration(self, event: dict) -> None:
        if self.lost:
            return
        now = time.time()
        engine = int(event["id"])
        if event.get("event") == "register":
            self._target = max(self._target, len(self.client.ids))
            self._learn_identity(engine)
        elif event.get("event") == "unregister":
            self._kill_orphan(engine)
            self._replace_engine()
            with self._lock:
                flights = [f for f in self._flights.values() if f.engine == engine]
            partial: dict[int, dict] = {}
            for f in flights:
                md = self.client.metadata.get(f.ar.msg_ids[0]) or {}
                out = (md.get("stdout") or "", md.get("stderr") or "")
                partial.setdefault(id(f.port), {})[(f.task.job, f.task.attempt)] = out
            for port in list(self._ports):
                msg = f"engine {engine} was lost while running the job"
                port.report(EngineLost(engine, now, msg, partial.get(id(port), {})))
        count = len(self.client.ids)
        for port in list(self._ports):
            port.report(EnginesChanged(count, now))

    def _kill_orphan(self, engine: int) -> None:
        """Kill a local engine process the controller gave up on (frozen, not dead).

        An engine that stopped answering heartbeats and comes back later lives
        on as an orphan that never gets work; its late results are ignored.
        """
        identity = self._identities.pop(engine, None)
        try:
            if not kill_engine(self.client, engine, identity, via_controller=False):
                return  # not on this host: nothing to kill from here
        except (ProcessLookupError, PermissionError):
            return  # already gone, as a dead engine is
        log.warning("engine %s (pid %s) was unregistered but alive; killed it", engine, identity and identity[0])

    def _replace_engine(self) -> None:
        """Keep a cluster we may start engines on at its size (the default local one does so itself)."""
        from .cluster import is_default_local, replace_engines

        if self.cluster is not None and not is_default_local(self.cluster):
            replace_engines(self.cluster, self.client, self._target)

    # -- watching the controller -----------------------------------------------------
    def _ensure_watchdog(self) -> None:
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, daemon=True, name="overseer-watchdog")
            self._watchdog.start()

    def _watch(self) -> None:
        while not self.lost:
            time.sleep(self.ping_interval)
            if getattr(self.client, "_closed", False):
                return  # closed on purpose: nothing is lost
            with self._lock:
                busy = bool(self._flights)
            if not busy:
                continue
            try:
                queue_status(self.client, self.ping_timeout)
            except Exception as exc:
                if getattr(self.client, "_closed", False):
                    return
                self.lost = True
                msg = (
                    f"the cluster stopped answering (no reply from its controller in "
                    f"{self.ping_timeout:g} s: {type(exc).__name__}); running jobs were put back. "
                    "Start or connect a cluster (ov.use_cluster(...)) and call run.resume() to go on."
                )
                log.error("overseer_nb: %s", msg)
                for port in list(self._ports):
                    port.report(ClusterLost(time.time(), msg))
                return

    # -- stopping work ------------------------------------------------------------------
    def interrupt(self, port: IPyParallelExecutor, job: str, attempt: int, engine: Any, kill_after: float) -> None:
        if engine is None:
            return
        try:
            self.client.send_signal(signal.SIGINT, targets=[engine], block=False)
        except Exception as exc:
            log.warning("could not interrupt engine %s: %s", engine, exc)
            return
        timer = threading.Timer(kill_after, self._kill_if_busy, (port, job, attempt, engine))
        timer.daemon = True
        timer.start()

    def _kill_if_busy(self, port: IPyParallelExecutor, job: str, attempt: int, engine: int) -> None:
        with self._lock:
            flight = self._flights.get((id(port), job, attempt))
        if flight is None or flight.engine != engine or engine not in self.client.ids:
            return
        log.warning("engine %s did not stop job %r after an interrupt; killing it", engine, job)
        try:
            kill_engine(self.client, engine, self._identities.get(engine), via_controller=True)
        except Exception as exc:
            log.warning("could not kill engine %s: %s", engine, exc)

    def withdraw(self, port: IPyParallelExecutor, job: str, attempt: int) -> None:
        with self._lock:
            flight = self._flights.get((id(port), job, attempt))
        if flight is not None and not flight.started:
            try:
                self.view.abort(flight.ar, block=False)
            except Exception as exc:
                log.debug("could not withdraw %r: %s", job, exc)


def _infrastructure_outcome(exc: BaseException, engine: Any) -> Outcome:
    """The outcome of an attempt whose task failed outside ``run_attempt``."""
    from ipyparallel import error

    if isinstance(exc, error.EngineError):
        return Outcome(OUTCOME_LOST, engine=engine, message=str(exc))
    if isinstance(exc, error.TaskAborted):
        return Outcome(OUTCOME_INTERRUPTED, engine=engine, message="withdrawn before it started")
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
