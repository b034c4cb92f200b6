"""The half of a :class:`~overseer_nb.execution.connection.Connection` that watches and stops.

The watchdog notices a controller that stopped answering, and a client that was
closed (``ov.stop_cluster()``, ``%overseer_cluster --stop``, ``use_cluster(...)``
replacing it): either way every run with attempts out hears ``ClusterLost``
and holds, its running jobs put back, so ``run.wait()`` returns and
``run.resume()`` goes on; a run that submits later hears it then. Queued tasks
get the withdrawal marker (:mod:`.scratch`), so a cluster that lives on (one
overseer_nb only connected to) does not run their handlers later.

Interrupts hit only the attempt they are for: the kernel signals an engine
only while that attempt's task is still out on it, and first puts the task's
msg_id in the engine kernel's ``aborted`` set (an ``abort_request``, answered
before the signal is sent), which the attempt's SIGINT handler on the engine
checks (:mod:`.sandbox`): a signal that arrives late, when the engine runs the
next job, is ignored there.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from ..events import ClusterLost
from .processes import kill_engine
from .scratch import mark_withdrawn

if TYPE_CHECKING:
    from .connection import _Flight
    from .ipp import IPyParallelExecutor

__all__ = ["Watchdog", "queue_status", "STOPPED_MESSAGE"]

log = logging.getLogger("overseer_nb")

STOPPED_MESSAGE = (
    "the cluster was stopped (its client was closed: ov.stop_cluster(), %overseer_cluster --stop or "
    "ov.use_cluster(...)) while jobs ran; running jobs were put back. Resume to go on: run.resume() runs "
    "them on the cluster in use now (or pass cluster=)."
)


def queue_status(client: Any, timeout: float) -> dict[int, dict]:
    """Engine id -> queue lengths, from the controller; ``TimeoutError`` if it does not answer.

    ``Client.queue_status()`` would wait forever for a dead controller.
    """
    reply = client._send(client._query_stream, "queue_request", content={"targets": None, "verbose": False})
    content = reply.result(timeout)["content"]
    return {int(k): v for k, v in content.items() if k.isdigit()}


class Watchdog:
    """The controller watchdog, ``ClusterLost``, interrupts and kills of one connection."""

    ping_interval = 1.0  # seconds between pings of the controller while attempts are out
    ping_timeout = 5.0
    poll_interval = 0.1  # seconds: how soon a closed client is noticed
    abort_timeout = 2.0  # seconds to wait for an engine to take an interrupt request

    # set by Connection
    client: Any
    lost: bool
    closed: bool
    _lock: threading.Lock
    _ports: weakref.WeakSet
    _flights: dict
    _identities: dict

    def __init__(self) -> None:
        self._watchdog: threading.Thread | None = None
        self._told: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # port -> when told it is gone
        self._gone_message = STOPPED_MESSAGE

    def ensure_watchdog(self) -> None:
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, daemon=True, name="overseer-watchdog")
            self._watchdog.start()

    def _watch(self) -> None:
        pinged = time.monotonic()
        while not self.lost:
            time.sleep(self.poll_interval)
            if self.closed:
                self._gone(STOPPED_MESSAGE)
                return
            if time.monotonic() - pinged < self.ping_interval:
                continue
            pinged = time.monotonic()
            with self._lock:
                busy = bool(self._flights)
            if not busy:
                continue
            try:
                queue_status(self.client, self.ping_timeout)
            except Exception as exc:
                if self.closed:
                    self._gone(STOPPED_MESSAGE)
                else:
                    self._gone(
                        f"the cluster stopped answering (no reply from its controller in "
                        f"{self.ping_timeout:g} s: {type(exc).__name__}); running jobs were put back. "
                        "Start or connect a cluster (ov.use_cluster(...)) and call run.resume() to go on."
                    )
                return

    def _gone(self, message: str) -> None:
        """The cluster is gone: every port with attempts out hears ``ClusterLost``; later ones on submit."""
        with self._lock:
            self.lost, self._gone_message = True, message
            # only runs counting on an attempt: ended and withdrawn ones are nothing to them
            ports = {id(f.port): f.port for f in self._flights.values() if not (f.ended or f.withdrawn)}
            queued = [f for f in self._flights.values() if not f.started]
            self._flights.clear()
        for flight in queued:  # a cluster that lives on must not run them later: the run gave them up
            mark_withdrawn(flight.scratch)
        if ports:
            log.error("overseer_nb: %s", message)
        for port in ports.values():
            self.tell_gone(port)

    def tell_gone(self, port: IPyParallelExecutor) -> None:
        """Tell ``port`` that the cluster is gone (once for all it submits at one go)."""
        now = time.monotonic()
        with self._lock:
            if now - self._told.get(port, -1e9) < 1.0:
                return  # its run holds on the first word; the rest of the step it sent adds nothing
            self._told[port] = now
        message = self._gone_message if self.lost else STOPPED_MESSAGE
        port.report(ClusterLost(time.time(), message))

    # -- stopping work ------------------------------------------------------------------
    def interrupt(self, port: IPyParallelExecutor, job: str, attempt: int, engine: Any, kill_after: float) -> None:
        """Interrupt attempt ``attempt`` of ``job`` if its task still runs on ``engine``; kill it after ``kill_after`` s."""
        with self._lock:
            flight = self._flights.get((id(port), job, attempt))
            current = flight is not None and flight.started and not flight.ended and flight.engine == engine
        if not current:
            log.debug("not interrupting %r: attempt %s no longer runs on engine %s", job, attempt, engine)
            return
        self.interrupt_flight(flight, kill_after)

    def interrupt_flight(self, flight: _Flight, kill_after: float | None) -> None:
        """Interrupt ``flight`` on its engine, in the background (see the module docstring)."""
        threading.Thread(
            target=self._interrupt, args=(flight, kill_after), daemon=True, name="overseer-interrupt"
        ).start()

    def _interrupt(self, flight: _Flight, kill_after: float | None) -> None:
        engine = flight.engine
        try:
            self.client.abort(jobs=[flight.msg_id], targets=[engine], block=False).result(self.abort_timeout)
        except Exception as exc:  # its engine will ignore the signal; the kill after the grace stops it
            log.debug("engine %s did not take the interrupt request for %r: %s", engine, flight.task.job, exc)
        if not self._out(flight):
            return  # it ended meanwhile: a signal now would hit the next job
        try:
            self.client.send_signal(signal.SIGINT, targets=[engine], block=False)
        except Exception as exc:
            log.warning("could not interrupt engine %s: %s", engine, exc)
            return
        if kill_after is not None:
            timer = threading.Timer(kill_after, self._kill_if_busy, (flight,))
            timer.daemon = True
            timer.start()

    def _out(self, flight: _Flight) -> bool:
        """True while ``flight``'s task is out on its engine (no reply yet)."""
        with self._lock:
            return self._flights.get(flight.key) is flight

    def _kill_if_busy(self, flight: _Flight) -> None:
        engine = flight.engine
        if not self._out(flight) or engine not in self.client.ids:
            return
        log.warning("engine %s did not stop job %r after an interrupt; killing it", engine, flight.task.job)
        try:
            kill_engine(self.client, engine, self._identities.get(engine), via_controller=True)
        except Exception as exc:
            log.warning("could not kill engine %s: %s", engine, exc)
