"""Writing a run into the journal, and the journal's part of resuming it.

:class:`Recorder` is the run's critical subscriber (a
:class:`~overseer_nb.running.RunRecorder`). On the run's loop thread it turns
each step into plain rows (reading the live records there, where they cannot
change underfoot), hands them to the journal's writer thread and waits for the
commit; if the commit fails it raises, and the run holds. :func:`attach` gives a
run its recorder.

Ownership: the ``runs`` row names the process that runs the run (host, pid).
A process takes a run (new, or resumed) only in one transaction that reads
that owner and writes itself in its place if the owner may be replaced (it
is this process, has nothing in flight, or is gone: a dead pid on this
machine, or no heartbeat from another machine for :data:`STALE_AFTER`
seconds); so of two processes resuming a run at once exactly one wins. Every
step is written only while this process still owns the run, and a run in
progress says it is alive every :data:`HEARTBEAT_EVERY` seconds (the
journal's writer thread writes the heartbeat of all of them at once).
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Callable, Collection
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..errors import JournalError, RunError, RunOwnerError
from ..graph import split_key
from ..records import Attempt, ErrorInfo
from ..states import ATTEMPT_LOST, FINISHED, HOLD_RESUME, STARTED, UNSTARTED
from ..text import clip_middle
from . import sql, sql_code
from .code import Code, record_code
from .file import Journal, open_journal
from .owners import (
    HEARTBEAT_EVERY,
    STALE_AFTER,
    changed_error,
    is_this_process,
    may_take,
    owner_alive,
    owner_error,
    this_process,
)
from .recorded import RecordedState

if TYPE_CHECKING:
    from ..machine import RunMachine
    from ..running import Run
    from ..steps import Step

__all__ = [
    "Recorder", "attach", "live_run", "owner_alive", "mark_lost", "result_data", "STORED", "IN_STORE", "LOST", "HEARTBEAT_EVERY", "STALE_AFTER",
]


STORED = "stored"  # result_note of a job whose result the journal holds
IN_STORE = "in store"  # result_note of a job whose result is in the result store: ``result`` holds where (JSON)

LOST = ErrorInfo(
    "KernelLost",
    "the process running this run stopped while this attempt ran; resume runs the job again",
)
_LOST_MESSAGE = "its kernel stopped while it ran; resumed"
_AGAIN = frozenset({"retry", "rerun"})  # reasons of transitions that run a job again with the handlers as they are now

# Runs this process journals, by (journal path, run id): load_run returns the
# live one, and resume refuses to start a second copy of it.
_live: weakref.WeakValueDictionary[tuple[str, str], Run] = weakref.WeakValueDictionary()


def live_run(journal: Journal, run_id: str) -> Run | None:
    """The run ``run_id`` of ``journal`` if this process journals it, else None."""
    return _live.get((journal.path, run_id))


def forget_live_runs() -> None:
    """Forget which runs this process journals (what a new process would know)."""
    _live.clear()


def result_data(result: bytes | None, note: str | None) -> Any:
    """A finished job's result as a ``jobs`` row holds it: its pickle, where it is in the store, or None."""
    if note == STORED:
        return result
    if note == IN_STORE and result is not None:
        from ..store import ResultRef

        return ResultRef.from_json(json.loads(result))
    return None


def attach(run: Run, journal: Any = None) -> Journal | None:
    """Journal ``run`` from now on (before ``run.start()``); return the journal, or None if off.

    Writes the run's row and subscribes a critical recorder. Raises
    :class:`~overseer_nb.errors.JournalError` if the journal cannot be written.
    """
    j = open_journal(journal)
    if j is None:
        return None
    recorder = run.recorder
    if not isinstance(recorder, Recorder) or recorder.journal is not j:
        recorder = Recorder.for_run(j, run)
    recorder.register(run)  # this process owns it now
    run.use_recorder(recorder)
    _live[(j.path, run.run_id)] = run
    return j


def mark_lost(attempt: Attempt) -> None:
    """Mark an attempt that never ended as lost with its kernel."""
    if attempt.outcome is None:
        attempt.outcome, attempt.error = ATTEMPT_LOST, LOST


def engine_value(engine: Any) -> Any:
    """An engine id as SQLite keeps it: ints and strings as they are, anything else as text."""
    if engine is None or isinstance(engine, (int, str)) and not isinstance(engine, bool):
        return engine
    return str(engine)


def run_row(run: Run) -> tuple:
    """The ``runs`` row of ``run`` (its owner: this process)."""
    try:
        args_repr = repr(run.args)
    except Exception:
        args_repr = "<args>"
    if len(args_repr) > 200:
        args_repr = args_repr[:197] + "..."
    now = time.time()
    return (
        run.run_id,
        json.dumps(run.graph.to_json()),
        run.args_blob,
        args_repr,
        json.dumps(asdict(run.options)),
        run.created,
        now,
        *this_process(),
        1,
        now,  # heartbeat
    )


class Recorder:
    """The critical subscriber that writes every step of one run to ``journal``."""

    def __init__(self, journal: Journal, run: Run, *, max_result_bytes: int, max_output_chars: int):
        self.journal = journal
        self.run_id = run.run_id
        self.max_result_bytes = max_result_bytes
        self.max_output_chars = max_output_chars
        self.failed: JournalError | None = None  # the last write's error, None once one succeeds
        self.active = True  # as the runs row has it
        # job -> (status, attempt) as the journal had them when the run was loaded
        # (load_run), until this process takes it: a claim is refused if they changed
        self.loaded: dict[str, tuple[str, int]] | None = None
        self.recorded = RecordedState()  # what the journal holds, for a run whose write was refused
        self.code: Code = {}  # job type -> (digest, source) of its handler as the journal has it

    @classmethod
    def for_run(cls, journal: Journal, run: Run) -> Recorder:
        """A recorder with the configured caps (``c.Overseer.journal_max_*``)."""
        from ..config import defaults

        cfg = defaults()
        return cls(
            journal, run, max_result_bytes=cfg.journal_max_result_bytes, max_output_chars=cfg.journal_max_output_chars
        )

    # -- the run's row ---------------------------------------------------------------
    def register(self, run: Run) -> None:
        """Take the run for this process: its row (new, or taken over) and one row per job.

        Raises :class:`~overseer_nb.errors.RunOwnerError` naming the owner if
        another live process owns the run, :class:`JournalError` if the journal
        cannot be written.
        """
        jobs = [(run.run_id, job, rec.status, len(rec.attempts), run.created) for job, rec in run.jobs.items()]
        row = run_row(run)
        refused = self.journal.write(sql.claim_run, row, jobs, self._refuse)
        if refused is not None:
            raise refused
        self.loaded = None  # from now on what this process writes is the run
        self.active = True
        self.failed = None  # the journal took this write
        self.recorded.take(run, run.jobs)
        record_code(self.journal, run, self.code)
        _recorders.add(self)
        with _beating_lock:
            if self.journal not in _beating:
                _beating.add(self.journal)
                self.journal.every(HEARTBEAT_EVERY, _heartbeat(self.journal))

    def _refuse(self, owner: dict[str, Any], jobs: dict[str, tuple]) -> RunOwnerError | None:
        """Why this process may not take the run from ``owner`` (None: it may); inside the claim."""
        if not may_take(owner):
            return owner_error(self.run_id, owner)
        if self.loaded is not None:  # a loaded copy: only if nobody carried the run on since
            changed = sorted(job for job in set(jobs) | set(self.loaded) if jobs.get(job) != self.loaded.get(job))
            return changed_error(self.run_id, owner, changed) if changed else None
        # a run this process ran, since taken by another: what it holds may be old
        return None if is_this_process(owner) else changed_error(self.run_id, owner, [])

    # -- each step -----------------------------------------------------------------------
    def __call__(self, run: Run, step: Step) -> None:
        if not (step.transitions or step.expanded or step.removed):
            return  # display-only changes are derived from stored statuses
        rid = self.run_id
        transitions = []
        last: dict[str, Any] = {}  # job -> its last transition in this step
        numbers: dict[str, set[int]] = {}
        for t in step.transitions:
            transitions.append((rid, t.job, t.old, t.new, t.reason, t.attempt, t.at, t.message))
            last[t.job] = t
            numbers.setdefault(t.job, set()).add(t.attempt)
        jobs, attempts = [], []
        for job, t in last.items():
            if job not in run.jobs:
                continue  # an item forgotten later in this batch (its type maps anew)
            rec = run.jobs[job]
            result, note = self._result(rec.result_data) if t.new == FINISHED else (None, None)
            jobs.append(self.job_row(job, t.new, t.attempt, t.message, t.at, result, note, rec))
            attempts.extend(self.attempt_row(job, a) for a in rec.attempts if a.number in numbers[job])
        # the machine has applied the step already: idle now means the run has
        # nothing left to do, so another process may resume it; not so while a
        # resume is applied (held until the run starts right after)
        active = not run.machine.is_idle() or HOLD_RESUME in run.machine.holds
        changed = active if active != self.active else None
        removed = [(rid, key) for key in step.removed]
        at = step.transitions[-1].at if step.transitions else time.time()
        added = [
            self.job_row(key, UNSTARTED, 0, "", at)
            for t in step.expanded for key in run.machine.topo.item_keys(t) if key not in last
        ]
        self._write(at, changed, transitions, jobs, attempts, removed, added)
        self.active = active
        self.recorded.take(run, last)
        again = {split_key(t.job)[0] for t in step.transitions if t.reason in _AGAIN}
        if again:  # a retry runs the handlers as they are now: keep the code it runs
            record_code(self.journal, run, self.code, sorted(again))

    def recorded_machine(self, run: Run) -> tuple[RunMachine, Step]:
        """A machine in the state the journal last committed, and the display step showing it."""
        return self.recorded.machine(run)

    def _write(self, at: float, active: bool | None, transitions: list, jobs: list, attempts: list,
               removed: list | None = None, added: list | None = None) -> None:
        try:
            owner = self.journal.write(sql.write_step, self.run_id, this_process(), at, active, transitions, jobs,
                                       attempts, removed, added)
            if owner is not None:
                raise owner_error(self.run_id, owner, doing="record")
        except JournalError as exc:
            self.failed = exc
            raise
        self.failed = None

    def job_row(
        self, job: str, status: str, attempt: int, message: str, at: float,
        result: bytes | None = None, note: str | None = None, rec: Any = None,
    ) -> tuple:
        """The values of a ``jobs`` row update, in :func:`sql.write_step`'s order (``rec``: its JobRecord)."""
        cache: tuple = (None, None, None, None, None, None)
        if rec is not None:
            parts = json.dumps(rec.fingerprint_parts) if rec.fingerprint_parts is not None else None
            digests = json.dumps(list(rec.item_digests)) if rec.item_digests else None
            cache = (rec.fingerprint, parts, rec.cached_from, rec.explanation or None, rec.length, digests)
        return (status, attempt, message, at, result, note, *cache, self.run_id, job)

    def attempt_row(self, job: str, a: Attempt) -> tuple:
        """The ``attempts`` row of attempt ``a`` of ``job``."""
        err = a.error
        cap = self.max_output_chars
        return (
            self.run_id, job, a.number, engine_value(a.engine), a.start, a.end, a.outcome,
            err.ename if err else None, err.evalue if err else None, err.traceback if err else None,
            clip_middle(a.stdout, cap), clip_middle(a.stderr, cap), a.task,
        )

    def _result(self, blob: Any) -> tuple[bytes | None, str]:
        if blob is None:
            return None, "no result was sent back"
        if not isinstance(blob, bytes):  # in the result store: the journal keeps where
            return json.dumps(blob.to_json()).encode(), IN_STORE
        if len(blob) > self.max_result_bytes:
            return None, (
                f"{len(blob)} bytes, over the journal's cap of {self.max_result_bytes} "
                "(c.Overseer.journal_max_result_bytes)"
            )
        return blob, STORED

    # -- the cache ---------------------------------------------------------------------------
    def find_cached(self, fingerprints: list[str]) -> dict[str, tuple]:
        """For each fingerprint a finished job of an earlier run had: (run id, result, length, item digests).

        Only results still at hand count: stored in the journal, or a file in the store.
        """
        if not fingerprints:
            return {}
        found = {}
        for fp, rows in self.journal.read(sql_code.find_finished, fingerprints, self.run_id).items():
            for run_id, _job, result, note, length, digests in rows:
                data = result_data(result, note)
                if data is not None and (isinstance(data, bytes) or data.exists()):
                    found[fp] = (run_id, data, length, tuple(json.loads(digests)) if digests else None)
                    break
        return found

    def last_parts(self, jobs: list[str], before: float) -> dict[str, dict]:
        """For each of ``jobs``: the fingerprint parts it had in the latest other run started before ``before``."""
        if not jobs:
            return {}
        found = self.journal.read(sql_code.last_parts, jobs, self.run_id, before)
        return {job: json.loads(parts) for job, parts in found.items()}

    # -- resuming ----------------------------------------------------------------------------
    def check_owner(self, run: Run) -> None:
        """Raise :class:`RunError` if another run object here, or another live process, runs ``run``.

        Only a look, early in ``Run.resume`` (before a cluster is started): the
        claim itself is :meth:`resumed`, one transaction that two processes
        racing past this look cannot both win.
        """
        live = live_run(self.journal, run.run_id)
        if live is not None and live is not run and not live.done:
            raise RunError(f"run {run.run_id} is going on in this kernel; wait for it or cancel it first")
        owner = self.journal.read(sql.read_owner, run.run_id)
        if owner is not None:
            refused = self._refuse(owner, self.journal.read(sql.read_job_states, run.run_id))
            if refused is not None:
                raise refused

    def resumed(self, run: Run, keep: Collection[str] = ()) -> None:
        """Own ``run`` from this process, and record ``started -> unstarted`` for attempts lost with their kernel.

        Raises :class:`~overseer_nb.errors.RunOwnerError` (a ``RunError``),
        naming the owner, if another live process owns the run by now; then
        nothing was written.
        """
        with _claiming:  # two run objects of one run in this process: the second waits, then sees the first
            live = live_run(self.journal, run.run_id)
            if live is not None and live is not run and not live.done:
                raise RunError(f"run {run.run_id} is going on in this kernel; wait for it or cancel it first")
            attach(run, self.journal)
        lost = [(job, n) for job, n in self.journal.read(sql.read_started_jobs, run.run_id) if job not in keep]
        if not lost:
            return
        now = time.time()
        transitions, jobs, attempts = [], [], []
        for job, number in lost:
            transitions.append((run.run_id, job, STARTED, UNSTARTED, "resume", number, now, _LOST_MESSAGE))
            jobs.append(self.job_row(job, UNSTARTED, number, _LOST_MESSAGE, now))
            for attempt in run.jobs[job].attempts:
                if attempt.number == number:
                    mark_lost(attempt)
                    attempts.append(self.attempt_row(job, attempt))
        self._write(now, True, transitions, jobs, attempts)
        self.recorded.take(run, [job for job, _n in lost])


_claiming = threading.Lock()

# Recorders of this process, and the journals whose writer thread writes the
# heartbeat of this process's runs in progress (one statement for all of them).
_recorders: weakref.WeakSet[Recorder] = weakref.WeakSet()
_beating: weakref.WeakSet[Journal] = weakref.WeakSet()
_beating_lock = threading.Lock()


def _heartbeat(journal: Journal) -> Callable[[Any], None]:
    def beat(conn: Any) -> None:
        if any(r.active and r.journal is journal for r in list(_recorders)):
            sql.beat(conn, this_process(), time.time())

    return beat
