"""``run.resume()``: run what did not finish, after a kernel restart or a journal hold."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from .errors import InvalidHandlerError, RunError
from .execution.seam import Executor
from .handlers import lifecycle
from .journal.recorder import NOT_STORED_BYTES, Recorder
from .running import Run
from .states import FINISHED, STARTED, UNSTARTED

__all__ = ["resume_run"]

log = logging.getLogger("overseer_nb")


def resume_run(
    run: Run,
    handlers: Mapping[str, Any] | None = None,
    *,
    executor: Executor | None = None,
    cluster: Any = None,
    journal: Any = None,
) -> Run:
    """Run every job of ``run`` that did not finish; return the run (it goes on in the background).

    Jobs recorded ``started`` (their kernel died mid-job) go back to unstarted;
    failed and aborted ones run again; finished ones do not, and their stored
    results feed their children. A finished job whose result the journal did
    not store runs again only if a child that must run needs it; ``run.message``
    says which. handlers: job type -> handler (default: the run's own; a
    loaded run has none). executor / cluster: where to run (default: the
    run's executor, or for a loaded run the default cluster). journal: for a
    run started without one, where to journal it from now on.

    Raises :class:`~overseer_nb.errors.RunError` if the run is going on here
    or in another live process on this machine, or a handler is missing.
    """
    from .journal.reading import _live, _owner_alive, attach, open_journal

    if not run.done:
        raise RunError(
            f"run {run.run_id} is still running; wait for it (run.wait()) or cancel it before resuming"
        )
    recorder: Recorder | None = getattr(run, "_journal_recorder", None)
    if recorder is not None:
        j = recorder.journal
    elif getattr(run, "_journal_loaded", None) is not None:
        j = run._journal_loaded  # type: ignore[attr-defined]
    else:  # a run started with journal=False stays without one unless journal= says otherwise
        j = open_journal(journal) if journal not in (None, False) else None
    if j is not None:
        live = _live.get((j.path, run.run_id))
        if live is not None and live is not run and not live.done:
            raise RunError(f"run {run.run_id} is going on in this kernel; wait for it or cancel it first")
        owner = j.read(_owner, run.run_id)
        if owner is not None and owner["active"] and _owner_alive(owner):
            raise RunError(
                f"run {run.run_id} is being run by process {owner['pid']} on this machine; "
                "resume it there, or stop that process first"
            )

    statuses = run.statuses
    unfinished = {job for job, status in statuses.items() if status != FINISHED}
    if not unfinished:
        run.message = "nothing to resume: every job finished"
        return run
    rerun = _unstored_parents(run, unfinished)
    to_run = unfinished | rerun
    handlers = run.handlers if handlers is None else handlers
    _check_handlers(run, handlers, to_run)
    run.handlers = handlers
    _use_executor(run, executor, cluster)

    if j is not None:
        attach(run, j)
        _record_lost(run, j)
    reset = {job for job in to_run if statuses[job] != UNSTARTED}
    note = f"resumed: {len(to_run)} job{'s' if len(to_run) != 1 else ''} to run"
    if rerun:
        names = ", ".join(sorted(rerun))
        note += f"; {names} run{'s' if len(rerun) == 1 else ''} again: its result was not stored in the journal and a child needs it"
    log.info("overseer_nb run %s: %s", run.run_id, note)
    recorder = getattr(run, "_journal_recorder", None)
    _hold(run.machine, "held", False)  # a journal that failed before: try again
    run.message = note
    run.shipper.forget()  # the handlers as they are now, globals included
    if run._started:
        run._command(lambda now: run.machine.resume(reset, now))
    else:
        # applied before the executor starts, so no child of a job that runs
        # again is sent with the placeholder of its parent's result
        _hold(run.machine, "resume", True)
        step = run.machine.resume(reset, time.time())
        if recorder is not None:
            recorder(run, step)
        run._publish(step, critical=False)
        _hold(run.machine, "resume", False)
        run.start()
    if recorder is not None and recorder.failed is not None:
        raise recorder.failed
    return run


def _hold(machine: Any, reason: str, on: bool) -> None:
    """Add or lift one hold of ``machine`` (named holds where it has them)."""
    holds = getattr(machine, "holds", None)
    if holds is None:
        machine.held = on
    elif on:
        holds.add(reason)
    else:
        holds.discard(reason)


def _unstored_parents(run: Run, must_run: set[str]) -> set[str]:
    """Finished ancestors whose result is not stored and that a job in ``must_run`` needs."""
    extra: set[str] = set()
    stack = list(must_run)
    while stack:
        job = stack.pop()
        for parent in run.graph.parents(job):
            if parent in must_run or parent in extra:
                continue
            blob = run.jobs[parent].result_bytes
            if blob is None or blob == NOT_STORED_BYTES:
                extra.add(parent)
                stack.append(parent)  # it needs its own parents' results in turn
    return extra


def _check_handlers(run: Run, handlers: Any, to_run: set[str]) -> None:
    if not isinstance(handlers, Mapping):
        raise InvalidHandlerError(
            f"handlers must be a dict of job type -> handler, got {type(handlers).__name__}"
        )
    missing = sorted(job for job in to_run if job not in handlers)
    if missing:
        names = ", ".join(map(repr, missing))
        raise RunError(
            f"cannot resume run {run.run_id}: no handler for {names}, which must run. "
            "Pass the handlers: run.resume(handlers), a dict of job type -> function."
        )
    for job in to_run:
        lifecycle(job, handlers[job])


def _use_executor(run: Run, executor: Executor | None, cluster: Any) -> None:
    from .journal.reading import _Detached

    if executor is None and cluster is None and not isinstance(run.executor, _Detached):
        return
    if executor is None:
        from .execution.cluster import current_client
        from .execution.ipp import IPyParallelExecutor

        client, cl = current_client(cluster)
        executor = IPyParallelExecutor(client, cl)
    if run._started:
        run.executor.close()
        executor.start(run._post)
    run.executor = executor
    # the run is idle here; a lost cluster or a cluster without engines is behind it now
    run.machine.holds -= {"cluster lost", "no engines"}


def _owner(conn: sqlite3.Connection, run_id: str) -> dict | None:
    row = conn.execute("SELECT host, pid, active FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else {"host": row[0], "pid": row[1], "active": row[2]}


def _record_lost(run: Run, j: Any) -> None:
    """Record ``started -> unstarted`` for jobs the journal has as started: their kernel is gone."""
    recorder: Recorder = run._journal_recorder  # type: ignore[attr-defined]
    lost = j.read(_started_jobs, run.run_id)
    if not lost:
        return
    now = time.time()
    transitions, jobs, attempts = [], [], []
    message = "its kernel stopped while it ran; resumed"
    for job, number in lost:
        transitions.append((run.run_id, job, STARTED, UNSTARTED, "resume", number, now, message))
        jobs.append((UNSTARTED, number, message, now, None, None, run.run_id, job))
        for attempt in run.jobs[job].attempts:
            if attempt.number == number:
                if attempt.outcome is None:
                    from .journal.reading import _LOST

                    attempt.outcome, attempt.error = "lost", _LOST
                attempts.append(recorder.attempt_row(job, attempt))
    from .journal.recorder import _write_step

    j.write(_write_step, run.run_id, now, True, transitions, jobs, attempts)


def _started_jobs(conn: sqlite3.Connection, run_id: str) -> list[tuple[str, int]]:
    return conn.execute("SELECT job, attempt FROM jobs WHERE run_id = ? AND status = 'started'", (run_id,)).fetchall()
