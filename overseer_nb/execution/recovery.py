"""After a kernel restart: what became of the attempts the old kernel had sent, asked of the cluster.

The journal keeps each attempt's task id (ipyparallel's msg_id). A new kernel
connected to the same controller asks the hub about them: a task the hub has
finished gives its result as if the attempt had just ended; one still queued
or running is followed until it ends; one the hub does not know (another
cluster, a restarted controller) runs again. So a job that ran on when its
kernel died is neither lost nor run twice at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .scratch import scratch_path
from .seam import LABEL, Task

if TYPE_CHECKING:
    from .connection import Connection
    from .ipp import IPyParallelExecutor

__all__ = ["known_tasks", "follow", "sent_tasks"]

log = logging.getLogger("overseer_nb")

POLL = 0.2  # seconds between questions to the hub while followed tasks run
_OUTPUT_CHARS = 1_000_000  # what is kept of a followed task's output, as it comes


def sent_tasks(conn: Connection, run_id: str) -> dict[tuple[str, int], tuple[str, bool]]:
    """Every task the hub holds for run ``run_id``: (job, attempt) -> (task id, whether an engine took it).

    What an earlier kernel sent, also what it sent ahead of parents and the
    journal never heard of. Empty if the hub cannot say.
    """
    try:
        records = conn.client.db_query({"label": {"$glob": f"{LABEL}/{run_id}/*"}},
                                       keys=["msg_id", "label", "started", "completed"])
    except Exception as exc:
        log.warning("overseer_nb: the cluster could not say what an earlier kernel sent: %s", exc)
        return {}
    found = {}
    for r in records:
        _prefix, _run, rest = r["label"].split("/", 2)
        job, _, attempt = rest.rpartition("/")
        ran = r.get("started") is not None or r.get("completed") is not None
        found[(job, int(attempt))] = (r["msg_id"], ran)
    return found


def known_tasks(conn: Connection, tasks: Mapping[tuple[str, int], str]) -> dict[tuple[str, int], Any]:
    """Of ``tasks`` ((job, attempt) -> task id), those the hub knows, with the engine that took each (or None)."""
    ids = {task: key for key, task in tasks.items() if task}
    if not ids:
        return {}
    try:
        records = conn.client.db_query({"msg_id": {"$in": list(ids)}}, keys=["msg_id", "engine_uuid"])
    except Exception as exc:  # an old or unreachable controller: nothing is known, everything runs again
        log.warning("overseer_nb: the cluster could not say what became of earlier attempts: %s", exc)
        return {}
    return {ids[r["msg_id"]]: conn._engine_of(r.get("engine_uuid")) for r in records if r.get("msg_id") in ids}


def follow(conn: Connection, port: IPyParallelExecutor, found: Mapping[tuple[str, int], tuple[str, str, Any]]) -> None:
    """Report what becomes of each found task ((job, attempt) -> (task id, run id, engine)) to ``port``.

    Each is tracked as a flight of ``port`` (an engine loss or an interrupt
    reaches it as any other), and its end is reported as an ``Ended`` event.
    """
    from .connection import _Flight

    flights = []
    for (job, attempt), (task_id, run_id, engine) in found.items():
        task = Task(job, attempt, run_id, (None, None, None), {}, b"", {}, 0, _OUTPUT_CHARS)
        ar = conn.client.get_result(task_id, block=False)
        flight = _Flight(port, task, ar, scratch_path(run_id, job, attempt), task.max_output_chars)
        flight.msg_id, flight.engine, flight.started = task_id, engine, engine is not None
        with conn._lock:
            conn._flights[flight.key] = flight
        flights.append(flight)
    if flights:
        conn.ensure_watchdog()
        threading.Thread(target=_poll, args=(conn, flights), daemon=True, name="overseer-recover").start()


def _poll(conn: Connection, flights: list[Any]) -> None:
    waiting = {f.msg_id: f for f in flights}
    while waiting and not (conn.lost or conn.closed):
        try:
            status = conn.client.result_status(list(waiting), status_only=True)
        except Exception as exc:
            log.debug("overseer_nb: asking the hub about earlier attempts failed: %s", exc)
            time.sleep(1.0)
            continue
        for task_id in status.get("completed", []):
            flight = waiting.pop(task_id, None)
            if flight is None:
                continue
            try:
                flight.ar = conn.client.get_result(task_id, block=False)
                flight.ar.wait(30)
            except Exception as exc:
                log.debug("overseer_nb: fetching the result of %s failed: %s", task_id, exc)
            conn._on_done(flight)
        if waiting:
            time.sleep(POLL)
