"""The run's own part of a resume: which jobs must run, which still run on the cluster, the handler check.

:meth:`overseer_nb.running.Run.resume` calls these; the journal's part
(ownership, recording lost attempts) is its recorder's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import InvalidHandlerError, RunError
from .events import Resume
from .graph import split_key
from .handlers import lifecycle
from .records import NOT_STORED_BYTES
from .runargs import new_session
from .states import ATTEMPT_LOST, FINISHED, HOLD_JOURNAL, HOLD_RESUME, UNSTARTED

if TYPE_CHECKING:
    from .running import Run

__all__ = ["still_on_the_cluster", "unstored_parents", "unfinished_jobs", "gone_from_store", "check_resume_handlers", "resume_run"]

log = logging.getLogger("overseer_nb")


def still_on_the_cluster(run: Run) -> dict[tuple[str, int], Any]:
    """Attempts an earlier kernel sent that an engine took and the cluster still knows: (job, attempt) -> engine.

    Those the journal recorded started, and those it never heard of: sent
    ahead of their parents, or taken by an engine just before the kernel
    stopped. One still queued does not run (the store says a new kernel carries
    the run on); the resumed run's attempt numbers come after it.
    """
    if run.started:
        return {}
    lost: dict[str, tuple[int, str]] = {}  # job -> (attempt, task id) of the latest one to ask about
    for job, rec in run.jobs.items():
        last = rec.attempts[-1] if rec.attempts else None
        # lost with its kernel: no end was ever recorded (an engine loss records one)
        if rec.status == UNSTARTED and last and last.task and last.outcome == ATTEMPT_LOST and last.end is None:
            lost[job] = (last.number, last.task)
    for (job, number), (task, ran) in sorted(run.executor.sent_tasks(run.run_id).items()):
        rec = run.jobs.get(job)
        if rec is None or rec.status != UNSTARTED:
            continue
        run.machine.skip_past(job, number)
        if ran and number > max((a.number for a in rec.attempts), default=0):
            lost[job] = (number, task)  # the later one counts
    asked = {(job, number): (task, run.run_id) for job, (number, task) in lost.items()}
    return run.executor.recover(asked) if asked else {}


def unfinished_jobs(run: Run) -> set[str]:
    """Every job (items by name) that did not finish; a mapped type that failed before mapping runs its parent again."""
    topo = run.machine.topo
    found = set()
    for key, rec in run.jobs.items():
        if rec.status == FINISHED:
            continue
        if not topo.is_gate(key):
            found.add(key)
        elif topo.items[key] is None:  # it failed (or was aborted) before its items were known
            parent = run.graph.each_of(key)
            found.add(parent if parent is not None and run.jobs[parent].status == FINISHED else key)
    return found


def gone_from_store(run: Run) -> set[str]:
    """Finished jobs whose result file is no longer in the result store (deleted, pruned, never written)."""
    return {job for job, rec in run.jobs.items() if rec.stored is not None and not rec.stored.exists()}


def unstored_parents(run: Run, must_run: set[str]) -> set[str]:
    """Finished ancestors whose result is not stored and that a job in ``must_run`` needs."""
    extra: set[str] = set()
    stack = list(must_run)
    while stack:
        job = stack.pop()
        for parent in run.machine.topo.parents(job):
            if parent in must_run or parent in extra or run.machine.topo.is_gate(parent):
                continue
            blob = run.jobs[parent].result_data
            if blob is None or blob == NOT_STORED_BYTES:
                extra.add(parent)
                stack.append(parent)  # it needs its own parents' results in turn
    return extra


def check_resume_handlers(run: Run, handlers: Any, to_run: set[str]) -> None:
    if not isinstance(handlers, Mapping):
        raise InvalidHandlerError(
            f"handlers must be a dict of job type -> handler, got {type(handlers).__name__}"
        )
    types = {split_key(job)[0] for job in to_run}  # an item runs its type's handler
    missing = sorted(job for job in types if job not in handlers)
    if missing:
        names = ", ".join(map(repr, missing))
        raise RunError(
            f"cannot resume run {run.run_id}: no handler for {names}, which must run. "
            "Pass the handlers: run.resume(handlers), a dict of job type -> function."
        )
    for job in types:
        lifecycle(job, handlers[job])


def resume_run(run: Run, handlers: Mapping[str, Any] | None, executor: Any, cluster: Any) -> Run:
    """The body of :meth:`overseer_nb.running.Run.resume` (see its docstring)."""
    if not run.done:
        raise RunError(
            f"run {run.run_id} is still running; wait for it (run.wait()) or cancel it before resuming"
        )
    if run.recorder is not None:
        run.recorder.check_owner(run)
    gone = gone_from_store(run)  # finished, but their result file is gone: they run again
    statuses = {key: rec.status for key, rec in run.jobs.items()}  # items too, by name
    unfinished = unfinished_jobs(run) | gone
    if not unfinished:
        run.message = "nothing to resume: every job finished"
        return run
    again = unstored_parents(run, unfinished)
    to_run = unfinished | again
    handlers = run.handlers if handlers is None else handlers
    check_resume_handlers(run, handlers, to_run)
    run.handlers = handlers
    run._use_executor(executor, cluster)
    run.data.begin_session(new_session())  # from now on, what an earlier kernel sent and no engine took does not run
    running = still_on_the_cluster(run)
    if run.recorder is not None:
        run.recorder.resumed(run, keep={job for job, _n in running})
    now = time.time()
    for (job, attempt), engine in running.items():  # they run on (or ran): their result counts
        run._loop.handle(run.machine.adopt(job, attempt, engine, now))
    to_run -= {job for job, _n in running}
    reset = frozenset(job for job in to_run if statuses[job] != UNSTARTED)
    note = f"resumed: {len(to_run)} job{'s' if len(to_run) != 1 else ''} to run"
    if again:
        names = ", ".join(sorted(again))
        note += f"; {names} run{'s' if len(again) == 1 else ''} again: its result was not stored in the journal and a child needs it"
    if gone:
        names = ", ".join(sorted(gone))
        note += f"; {names} run{'s' if len(gone) == 1 else ''} again: its result file is gone from the store"
    log.info("overseer_nb run %s: %s", run.run_id, note)
    run.machine.unhold(HOLD_JOURNAL)  # a journal that failed before: try again
    run.message = note
    if run._started:
        run._loop.command(Resume(reset), refresh=True)
    else:
        # applied before the executor starts, so no child of a job that runs
        # again is sent with the placeholder of its parent's result
        run.machine.hold(HOLD_RESUME)
        run._loop.apply_command(Resume(reset), refresh=True)
        run.machine.unhold(HOLD_RESUME)
        run.start()
    if run.recorder is not None and run.recorder.failed is not None:
        raise run.recorder.failed
    return run
