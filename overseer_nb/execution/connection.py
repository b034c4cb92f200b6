"""The connection all runs on one ipyparallel ``Client`` share.

One :class:`Connection` per client holds one registration callback, one
controller watchdog and one table of engine processes; each run's
:class:`~overseer_nb.execution.ipp.IPyParallelExecutor` (its *port*) submits
through it and gets its events back. The engine that takes a task is learned
from its first IOPub message, so a job shows ``started`` only when an engine
really runs it, and an engine's death is acted on as soon as the controller
unregisters it instead of after ipyparallel's 5 s grace period.

What happened to an attempt decides its outcome, not the order the news came
in: an attempt whose engine died counts as lost whether the unregistration
came before its first IOPub message (the hub's task table names its engine),
after it, or never (the scheduler's ``EngineError`` reply). Each attempt is
reported once; a withdrawn attempt is never reported (the run gave it up) and,
if an engine runs it anyway, it is interrupted. The watchdog and the
interrupts are in :mod:`.watchdog`.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import weakref
from collections import defaultdict
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..events import Ended, EngineLost, EnginesChanged, Started
from ..states import OUTCOME_LOST
from .capture import BoundedText, collapse_cr, read_capture
from .engine import run_attempt
from .packing import pack_call, unpack_report
from .placement import Placement
from .processes import EngineProcess, engine_process, kill_engine
from .scratch import forget, mark_withdrawn, scratch_path, sweep
from .seam import Task, infrastructure_outcome, outcome_from_report
from .watchdog import Watchdog, queue_status

if TYPE_CHECKING:
    from .ipp import IPyParallelExecutor

__all__ = ["Connection", "queue_status", "kill_engine"]

log = logging.getLogger("overseer_nb")

_ENGINE_IN_ERROR = re.compile(r"Engine b?'([^']+)'")


class _Flight:
    """One submitted attempt: its AsyncResult and, once known, its engine.

    ``started``: an engine was seen running it; ``ended``: its outcome was
    reported (or it was withdrawn): nothing more is said about it.
    ``out``/``err``: what it printed, as IOPub forwarded it (bounded; used when
    its engine dies where its scratch files cannot be read).
    """

    __slots__ = ("port", "task", "ar", "msg_id", "scratch", "limit", "engine", "started", "ended", "withdrawn",
                 "out", "err", "placed")

    def __init__(self, port: IPyParallelExecutor, task: Task, ar: Any, scratch: str, limit: int):
        self.port, self.task, self.ar, self.scratch, self.limit = port, task, ar, scratch, limit
        self.msg_id: str = ar.msg_ids[0]
        self.engine: int | None = None
        self.placed: int | None = None  # the engine it was sent to (placed near its input), if any
        self.started = self.ended = self.withdrawn = False
        self.out, self.err = BoundedText(limit), BoundedText(limit)

    @property
    def key(self) -> tuple[int, str, int]:
        return (id(self.port), self.task.job, self.task.attempt)


class Connection(Watchdog, Placement):
    """What all runs on one client share; see the module docstring."""

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
        self._submitting = threading.Lock()
        self._ports: weakref.WeakSet = weakref.WeakSet()
        self._flights: dict[tuple[int, str, int], _Flight] = {}
        self._identities: dict[int, EngineProcess] = {}
        self._uuids = {uuid: engine for engine, uuid in client._engines.items()}  # kept after engines leave
        self._dead: set[int] = set()
        self._target = len(client.ids)  # engines to keep, when we may start some
        Watchdog.__init__(self)
        Placement.__init__(self)
        client._registration_callbacks.append(self._on_registration)
        for engine in list(client.ids):
            self._learn_identity(engine)
        threading.Thread(target=sweep, daemon=True, name="overseer-sweep").start()

    def attach(self, port: IPyParallelExecutor) -> None:
        self._ports.add(port)

    def detach(self, port: IPyParallelExecutor) -> None:
        self._ports.discard(port)

    @property
    def closed(self) -> bool:
        """True once the client was closed (the cluster was stopped or replaced)."""
        return bool(getattr(self.client, "_closed", False))

    # -- submitting ----------------------------------------------------------------
    def submit(self, port: IPyParallelExecutor, task: Task, call: dict[str, Any]) -> None:
        """Send ``run_attempt(**call)`` for ``task`` to the load-balanced view.

        ``task.prefer``: the engine that holds the task's biggest input; the
        task goes there if that engine runs nothing now (or, ``task.prefer_wait``,
        one job), else to whichever is free first.
        On a closed or lost cluster nothing is sent: the port hears
        ``ClusterLost`` instead, and the run holds.
        """
        if self.lost or self.closed:
            self.tell_gone(port)
            return
        self.ensure_watchdog()
        scratch = scratch_path(task.run_id, task.job, task.attempt)
        after, follow = self._after(port, task.after), self._after(port, task.follow)
        view = self.view if after else self._view_for(task.prefer, task.prefer_wait)
        # the label lets a kernel that resumes the run ask the hub what this one sent (recovery.sent_tasks).
        # The flags are given to this one task (the view's own are shared, and setting them through its
        # traits costs 0.3 ms a task)
        packed = pack_call({**call, "scratch": scratch})
        f, args, kwargs = (packed[0], (packed[1],), {}) if packed else (run_attempt, (), {"scratch": scratch, **call})
        with self._submitting:
            ar = view._really_apply(f, args, kwargs, block=False, after=after, follow=follow, label=task.label)
        flight = _Flight(port, task, ar, scratch, call.get("capture_limit", task.max_output_chars))
        flight.placed = task.prefer if view is not self.view else None
        with self._lock:
            self._flights[flight.key] = flight
        ar._children[0].iopub_callbacks.append(lambda msg: self._on_iopub(flight, msg))
        # the engine may have spoken before the callback was in place
        md = self.client.metadata.get(flight.msg_id) or {}
        engine = self._engine_of(md.get("engine_uuid"))
        if engine is not None:
            self._seen_on(flight, engine)
        ar.add_done_callback(lambda _f: self._on_done(flight))

    def _after(self, port: IPyParallelExecutor, attempts: tuple[tuple[str, int], ...]) -> list[str]:
        """The task ids of ``attempts`` (``Task.after``, ``Task.follow``) still out.

        The scheduler starts a task after those (on the engine of those it
        follows). One that ended already is left out: its result, or its
        absence, is where the task looks by now (a task that then runs
        elsewhere than an input kept in memory finds nothing and is sent again).
        """
        if not attempts:
            return []
        with self._lock:
            found = [self._flights.get((id(port), job, attempt)) for job, attempt in attempts]
        return [f.msg_id for f in found if f is not None and not f.ended]

    def _engine_of(self, uuid: Any) -> int | None:
        if isinstance(uuid, bytes):
            uuid = uuid.decode("ascii", "replace")
        return self._uuids.get(uuid) if uuid else None

    def _on_iopub(self, flight: _Flight, msg: dict) -> None:
        content = msg.get("content") or {}
        if msg.get("msg_type") == "stream" and content.get("name") in ("stdout", "stderr"):
            name = content["name"]
            (flight.out if name == "stdout" else flight.err).write(content.get("text", ""))
            md = self.client.metadata.get(flight.msg_id)
            if md is not None:
                md[name] = ""  # the flight keeps a bounded copy; the client's would grow without bound
        if not flight.started:
            engine = self._engine_of((msg.get("metadata") or {}).get("engine"))
            if engine is not None:
                self._seen_on(flight, engine)

    def _seen_on(self, flight: _Flight, engine: int) -> None:
        """``engine`` runs ``flight``: report it started, or lost if that engine is gone already."""
        with self._lock:
            if flight.started or flight.ended:
                return
            flight.started, flight.engine = True, engine
            dead = engine in self._dead
        if flight.withdrawn:
            self.interrupt_flight(flight, None)  # the run gave it up: stop it, report nothing
        elif dead:
            self._lose(engine, [flight])  # the unregistration came before its first message
        else:
            flight.port.report(Started(flight.task.job, flight.task.attempt, engine, time.time(), flight.msg_id))

    def _on_done(self, flight: _Flight) -> None:
        with self._lock:
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]
            told, flight.ended = flight.ended or flight.withdrawn, True
        md = self.client.metadata.get(flight.msg_id) or {}
        for name in ("stdout", "stderr"):
            if md.get(name):
                md[name] = ""
        if told:
            forget(flight.scratch)
            return
        engine = flight.engine if flight.engine is not None else self._engine_of(md.get("engine_uuid"))
        try:
            report = unpack_report(flight.ar.get(0))
            outcome = outcome_from_report(report, engine if engine is not None else flight.ar.engine_id)
        except Exception as exc:  # an infrastructure failure, not the handler's
            outcome = infrastructure_outcome(exc, engine if engine is not None else self._engine_in(exc))
            if outcome.kind == OUTCOME_LOST:
                out, err = self._partial(flight, outcome.engine)
                outcome = replace(outcome, stdout=out, stderr=err)
            forget(flight.scratch)  # its engine did not get to remove its scratch folder
        # a report came back: the engine removed the scratch folder itself (and this is
        # the client's I/O thread, which every reply waits for)
        flight.port.report(Ended(flight.task.job, flight.task.attempt, outcome, time.time()))

    def _engine_in(self, exc: BaseException) -> int | None:
        found = _ENGINE_IN_ERROR.search(str(getattr(exc, "evalue", exc)))
        return self._engine_of(found.group(1)) if found else None

    # -- engines coming and going ----------------------------------------------------
    def _learn_identity(self, engine: int) -> None:
        try:
            ar = self.client[engine].apply_async(engine_process)
        except Exception:  # the engine left already
            return

        def store(_f: Any) -> None:
            try:
                self._identities[engine] = EngineProcess(*ar.get(0))
            except Exception:
                pass

        ar.add_done_callback(store)

    def _on_registration(self, event: dict) -> None:
        if self.lost:
            return
        now = time.time()
        engine, uuid = int(event["id"]), event.get("uuid")
        if event.get("event") == "register":
            if uuid:
                self._uuids[uuid] = engine
            self._target = max(self._target, len(self.client.ids))
            self._learn_identity(engine)
            self._withdraw_on(engine)
        elif event.get("event") == "unregister":
            with self._lock:
                self._dead.add(engine)
                running = [f for f in self._flights.values() if f.engine == engine and not f.ended]
                unseen = [f for f in self._flights.values() if not (f.started or f.ended or f.withdrawn)]
            self._kill_orphan(engine)
            self._replace_engine()
            self._lose(engine, running, every_port=True)
            if unseen and uuid:
                self._find_unseen(engine, uuid, unseen)
        count = len(self.client.ids)
        for port in list(self._ports):
            port.report(EnginesChanged(count, now))

    def _find_unseen(self, engine: int, uuid: str, flights: list[_Flight]) -> None:
        """Ask the hub which of ``flights`` (never seen starting) were on the dead ``engine``; lose those.

        The hub records each task's engine when the scheduler sends it; without
        its answer (a controller with no task database) the scheduler's
        ``EngineError`` reply, 5 s later, says the same.
        """
        query = {"query": {"msg_id": {"$in": [f.msg_id for f in flights]}}, "keys": ["msg_id", "engine_uuid"]}
        try:
            reply = self.client._send(self.client._query_stream, "db_request", content=query)
        except Exception as exc:
            log.debug("overseer_nb: cannot ask the hub where tasks ran: %s", exc)
            return

        def answered(_f: Any) -> None:
            try:
                records = reply.result(0)["content"]["records"]
            except Exception as exc:
                log.debug("overseer_nb: the hub did not say where tasks ran: %s", exc)
                return
            on_it = {r["msg_id"] for r in records if r.get("engine_uuid") == uuid}
            self._lose(engine, [f for f in flights if f.msg_id in on_it])

        reply.add_done_callback(answered)

    def _lose(self, engine: int, flights: list[_Flight], *, every_port: bool = False) -> None:
        """Report ``flights`` lost with ``engine``: one ``EngineLost`` per port, naming them."""
        with self._lock:
            flights = [f for f in flights if not (f.ended or f.withdrawn)]
            for f in flights:
                f.ended, f.engine = True, engine
        partial: dict[int, dict] = defaultdict(dict)
        for f in flights:
            partial[id(f.port)][(f.task.job, f.task.attempt)] = self._partial(f, engine)
        ports = list(self._ports) if every_port else list({id(f.port): f.port for f in flights}.values())
        msg = f"engine {engine} was lost while running the job"
        now = time.time()
        for port in ports:
            port.report(EngineLost(engine, now, msg, partial.get(id(port), {})))

    def _partial(self, flight: _Flight, engine: Any) -> tuple[str, str]:
        """What a lost attempt printed: its scratch files if this host can read them, else its IOPub copy.

        The files hold everything, C code's output and a native crash's stack
        included; IOPub only what Python printed.
        """
        out_file, err_file = (os.path.join(flight.scratch, name) for name in ("stdout", "stderr"))
        texts = read_capture(out_file, flight.limit), read_capture(err_file, flight.limit)
        found = any(texts) or os.path.exists(err_file)
        forget(flight.scratch)
        if found:
            return texts
        out, err = collapse_cr(flight.out.getvalue()), collapse_cr(flight.err.getvalue())
        where = self._identities.get(engine) if isinstance(engine, int) else None
        if where is not None and where.host != socket.gethostname():
            err += (f"\n[overseer_nb: engine {engine} ran on {where.host}; its whole output and any crash "
                    f"stack are in {flight.scratch} there]\n")
        return out, err

    def _kill_orphan(self, engine: int) -> None:
        """Kill a local engine process the controller gave up on (frozen, not dead).

        An engine that stopped answering heartbeats and comes back later lives
        on as an orphan that never gets work; its late results are ignored.
        Only the process that registered is killed, never one that took its pid.
        """
        identity = self._identities.get(engine)  # kept: a lost attempt's message says where it ran
        try:
            if not kill_engine(self.client, engine, identity, via_controller=False):
                return  # gone, not on this host, or its pid is another process's now
        except (ProcessLookupError, PermissionError):
            return  # already gone, as a dead engine is
        log.warning("engine %s (pid %s) was unregistered but alive; killed it", engine, identity and identity.pid)

    def _replace_engine(self) -> None:
        """Keep a cluster we may start engines on at its size (the default local one does so itself)."""
        from .cluster import is_default_local, replace_engines

        if self.cluster is not None and not is_default_local(self.cluster):
            replace_engines(self.cluster, self.client, self._target)

    # -- withdrawing ------------------------------------------------------------------
    def withdraw(self, port: IPyParallelExecutor, job: str, attempt: int) -> None:
        """Give up a submitted attempt: it must not run, and if it does, it is stopped and never reported.

        ipyparallel's abort reaches only the engines there are now; the marker
        file beside its scratch folder stops it on an engine of this host (or one
        sharing the file system) that joins later, and one elsewhere is
        interrupted as soon as it is seen running.
        """
        with self._lock:
            flight = self._flights.get((id(port), job, attempt))
            if flight is None or flight.ended:
                return
            flight.withdrawn = True
            started = flight.started
        if started:
            self.interrupt_flight(flight, None)
            return
        mark_withdrawn(flight.scratch)
        try:
            self.view.abort(flight.ar, block=False)
        except Exception as exc:  # no engine now: the marker and the fence stay
            log.debug("could not withdraw %r: %s", job, exc)

    def _withdraw_on(self, engine: int) -> None:
        """Tell an engine that joined which queued tasks were withdrawn (ipyparallel's abort missed it)."""
        with self._lock:
            ids = [f.msg_id for f in self._flights.values() if f.withdrawn and not (f.started or f.ended)]
        if ids:
            try:
                self.client.abort(jobs=ids, targets=[engine], block=False)
            except Exception as exc:
                log.debug("could not tell engine %s of withdrawn tasks: %s", engine, exc)
