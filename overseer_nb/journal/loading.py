"""``load_run``: a run as the journal last recorded it, in three steps.

rows (:func:`~overseer_nb.journal.sql.read_run`) -> :class:`Restored` (decoded
values, attempts lost with a dead owner marked) -> a
:class:`~overseer_nb.running.Run` with a restored machine and a recorder that
takes the run over when it is resumed.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
from dataclasses import dataclass, field, fields
from typing import Any

from ..config import defaults
from ..errors import JournalError, RunError
from ..execution import Detached
from ..graph import JobGraph, split_key
from ..machine import RunMachine
from ..options import RunOptions
from ..records import NOT_STORED_BYTES, Attempt, ErrorInfo
from ..running import Run
from ..states import FINISHED, STARTED, UNSTARTED
from ..store import ResultRef, store_location
from . import sql
from .file import Journal, open_journal
from .recorder import Recorder, live_run, mark_lost, owner_alive, result_data

__all__ = ["load_run", "reader", "Restored", "restore", "build_run"]


def reader(journal: Any) -> Journal:
    """The journal to read: see :func:`~overseer_nb.journal.file.journal_location`; never off."""
    if journal is False:
        raise JournalError("there is no journal to read with journal=False; give a path or leave it out")
    j = open_journal(journal)
    assert j is not None
    return j


def load_run(run_id: Any, journal: Any = None) -> Run:
    """The run ``run_id`` (or a unique prefix of it) as the journal last recorded it.

    Jobs recorded ``started`` show ``unstarted`` (their attempt was lost with its
    kernel). A run still going on in this process is returned as it is.
    ``run.resume(handlers)`` runs what did not finish. Starts no cluster.
    Raises :class:`~overseer_nb.errors.RunError` for an unknown run id.
    """
    run_id = getattr(run_id, "run_id", run_id)  # a RunInfo row of ov.runs()
    j = reader(journal)
    found = j.read(sql.read_run, str(run_id))
    if isinstance(found, str):
        raise RunError(found)
    row, job_rows, attempt_rows = found
    live = live_run(j, row["run_id"])
    if live is not None:
        return live
    return build_run(j, restore(row, job_rows, attempt_rows))


@dataclass
class JobState:
    """One job as recorded: its status, attempts, result bytes and message."""

    status: str
    attempts: list[Attempt]
    result: bytes | None
    message: str


@dataclass
class Restored:
    """A run decoded from its rows, before anything is built from it."""

    run_id: str
    graph: JobGraph
    options: RunOptions
    args: dict
    args_blob: bytes | None
    created: float
    ended: float | None  # None while its owner is alive
    owner_alive: bool
    owner_pid: int | None
    owner_host: str = ""
    jobs: dict[str, JobState] = field(default_factory=dict)
    rows: dict[str, tuple[str, int]] = field(default_factory=dict)  # job -> (status, attempt) as recorded
    items: dict[str, int] = field(default_factory=dict)  # mapped type -> its items, as recorded
    cache: dict[str, dict] = field(default_factory=dict)  # job -> its fingerprint, cached_from, explanation, length
    notes: list[str] = field(default_factory=list)


def restore(row: dict, job_rows: list[dict], attempt_rows: list[dict]) -> Restored:
    """Decode a run's rows; attempts of a dead owner that never ended are marked lost."""
    graph = JobGraph(json.loads(row["graph"]))
    known = {f.name for f in fields(RunOptions)}
    options = RunOptions(**{k: v for k, v in json.loads(row["options"]).items() if k in known})
    notes = []
    try:
        args = pickle.loads(row["args"]) if row["args"] is not None else {}
    except Exception as exc:
        args = {}
        notes.append(f"its args cannot be read here ({exc}); jobs still get the original ones")
    alive = bool(row["active"]) and owner_alive(row)
    ended = None if alive else max([row["updated"]] + [jr["updated"] or 0.0 for jr in job_rows])
    restored = Restored(
        row["run_id"], graph, options, args, row["args"], row["created"], ended, alive, row["pid"],
        row["host"], notes=notes,
    )
    attempts: dict[str, list[Attempt]] = {}
    for a in attempt_rows:
        error = ErrorInfo(a["ename"], a["evalue"] or "", a["traceback"] or "") if a["ename"] is not None else None
        attempts.setdefault(a["job"], []).append(
            Attempt(a["number"], a["engine"], a["start"], a["end"], a["stdout"], a["stderr"], error, a["outcome"],
                    a["task"])
        )
    restored.rows = {jr["job"]: (jr["status"], jr["attempt"]) for jr in job_rows}
    for jr in job_rows:
        job, status = jr["job"], jr["status"]
        kind, index = split_key(job)
        if kind not in graph or (index is not None and kind not in graph.mapped):
            continue
        if index is not None:
            restored.items[kind] = max(restored.items.get(kind, 0), index + 1)
        mine = attempts.get(job, [])
        if status == STARTED and not alive and mine:
            mark_lost(mine[-1])
        result, message = None, jr["message"]
        if status == FINISHED:
            result = result_data(jr["result"], jr["result_note"])
            if result is None:
                result = NOT_STORED_BYTES
                message = message or f"result not stored in the journal: {jr['result_note']}"
        restored.jobs[job] = JobState(status, mine, result, message)
        parts = jr["fingerprint_parts"]
        restored.cache[job] = {
            "fingerprint": jr["fingerprint"], "fingerprint_parts": json.loads(parts) if parts else None,
            "cached_from": jr["cached_from"], "explanation": jr["explanation"] or "", "length": jr["length"],
            "item_digests": tuple(json.loads(jr["item_digests"])) if jr["item_digests"] else None,
        }
    return restored


def _store_of(j: Journal, restored: Restored) -> str:
    """The store a loaded run keeps its results in: where its stored results are, else the usual place."""
    for state in restored.jobs.values():
        if isinstance(state.result, ResultRef):
            return os.path.dirname(os.path.dirname(state.result.path))
    return store_location(configured=defaults().store, journal_path=j.path)


def build_run(j: Journal, restored: Restored) -> Run:
    """A :class:`Run` with ``restored``'s states, journaled by ``j`` once it is resumed."""
    machine = RunMachine(restored.graph, restored.options)
    for kind in restored.graph.mapped:  # the items known when it was recorded
        if kind in restored.items and machine.topo.items[kind] is None:
            machine.restore_items(kind, restored.items[kind])
        elif kind not in restored.items and restored.jobs.get(kind, JobState(UNSTARTED, [], None, "")).status == FINISHED:
            machine.restore_items(kind, 0)  # it mapped over an empty list
    for job, state in restored.jobs.items():
        machine.restore(job, state.status, state.attempts, state.result, state.message,
                        cached=bool(restored.cache.get(job, {}).get("cached_from")))
        for name, value in restored.cache.get(job, {}).items():
            setattr(machine.records[job], name, value)
    machine.finish_restore()
    run = Run(
        restored.graph, {}, Detached(), args=restored.args, options=restored.options,
        run_id=restored.run_id, machine=machine, args_blob=restored.args_blob, store=_store_of(j, restored),
    )
    run.created = restored.created
    run.ended = restored.ended
    recorder = Recorder.for_run(j, run)  # writes nothing until run.resume() takes it over
    recorder.loaded = dict(restored.rows)  # ... and only if nobody carried the run on since
    run.use_recorder(recorder)
    if restored.owner_alive:
        where = "this machine" if restored.owner_host == socket.gethostname() else restored.owner_host
        first = f"process {restored.owner_pid} on {where} is still running it; this is its state when loaded"
    else:
        first = "loaded from the journal; run.resume(handlers) runs what did not finish"
    run.message = "; ".join([first, *restored.notes])
    return run

