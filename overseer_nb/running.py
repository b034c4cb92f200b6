"""A run: one execution of a graph, driven by one loop thread (:mod:`overseer_nb._run_loop`).

Executor callbacks and user commands only enqueue; the loop is the one writer
that feeds the state machine, carries out its instructions and publishes each
step to subscribers (the journal first, then displays), so a run behaves the
same with nothing displayed. The journal plugs in through :class:`RunRecorder`;
this module knows nothing of it.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from ._run_cache import RunCache, explain
from ._run_data import DataPlane
from ._run_loop import RunLoop, Subscriber
from ._run_resume import resume_run
from .events import Abort, Cancel, EnginesChanged, Rerun, Retry
from .execution import Executor, connect
from .graph import JobGraph
from .handlers import current_lifecycle
from .machine import RunMachine
from .options import RunOptions
from .records import JobRecord
from .runargs import new_run_id, pickle_args
from .states import FINISHED, HOLD_CLUSTER_LOST, HOLD_NO_ENGINES
from .steps import Step
from .why import why_waiting

__all__ = ["Run", "RunRecorder"]

log = logging.getLogger("overseer_nb")


class RunRecorder(Protocol):
    """What the run asks of a journal (``overseer_nb.journal`` provides one).

    It is the run's critical subscriber (``recorder(run, step)`` before each
    step's instructions are carried out; raising holds the run), and it does
    the journal's part of :meth:`Run.resume`.
    """

    failed: Exception | None  # the last write's error, None once one succeeded

    def __call__(self, run: Run, step: Step) -> None: ...

    def check_owner(self, run: Run) -> None:
        """Raise :class:`RunError` if another process (or run object) is running ``run``."""

    def resumed(self, run: Run, keep: Collection[str] = ()) -> None:
        """Take ownership of ``run`` for this process and record the attempts its last owner lost.

        keep: jobs whose attempt the cluster still runs (or ran): not lost.
        """

    def recorded_machine(self, run: Run) -> tuple[RunMachine, Step]:
        """A machine in the state the journal last committed (the run falls back to it when a write fails)."""
        ...

    def find_cached(self, fingerprints: list[str]) -> dict[str, tuple]:
        """For each fingerprint a finished job of an earlier run had: (run id, result, length, item digests)."""
        ...

    def last_parts(self, jobs: list[str], before: float) -> dict[str, dict]:
        """For each of ``jobs``: the fingerprint parts it had in the latest other run started before ``before``."""
        ...


class Run:
    """One execution of a job graph (see ``overseer_nb.run`` to start one).

    Read ``statuses``, ``results``, ``jobs`` at any time; they are live while
    the run goes on. ``wait()`` blocks until nothing can progress.
    """

    def __init__(
        self,
        graph: JobGraph,
        handlers: Mapping[str, Any],
        executor: Executor,
        *,
        args: Mapping[str, Any] | None = None,
        options: RunOptions | None = None,
        run_id: str | None = None,
        machine: RunMachine | None = None,
        args_blob: bytes | None = None,
        store: str | None = None,
    ):
        self.graph = graph
        self.handlers = handlers
        # the args as the engines get them; a loaded run keeps the original bytes
        self.args_blob = pickle_args({} if args is None else args) if args_blob is None else args_blob
        self.args = dict(args or {})
        self.options = options or RunOptions()
        self.run_id = run_id or new_run_id()
        self.executor = executor
        self.machine = machine or RunMachine(graph, self.options)
        self.created = time.time()
        self.ended: float | None = None
        self.message = ""
        self.recorder: RunRecorder | None = None
        self._unsubscribe_recorder: Callable[[], None] | None = None
        self.data = DataPlane(self, store)  # where results go: the store at ``store``, or relayed (None)
        self.cache = RunCache(self)  # fingerprints, and results reused from earlier runs
        self._loop = RunLoop(self)
        self._started = False
        # called by wait() on the waiting thread once the run is done: a display shows
        # the final state from there (in a notebook, as output of the cell that waits)
        self.settle_hooks: list[Callable[[], None]] = []

    @classmethod
    def in_progress(cls) -> list[Run]:
        """The runs of this process that are running now (their results are never pruned)."""
        return [run for run in list(_RUNS) if run.started and not run.done]

    # -- starting ------------------------------------------------------------------
    def start(self) -> Run:
        """Begin running (``overseer_nb.run`` calls this); returns at once."""
        if self._started:
            return self
        self._started = True
        _RUNS.add(self)
        self.refresh_job_options()
        self.executor.start(self.report)
        self._connect_store()
        if self.executor.engine_count() == 0:
            self.report(EnginesChanged(0, time.time()))
        self._loop.post(None)  # a first tick: submit what is ready
        return self

    def _connect_store(self) -> None:
        self.machine.max_out = self.executor.queue_limit()  # and the window of attempts out at once
        self.data.connect()
        # jobs go out ahead of their parents where the cluster can hold them back and they can read the store
        self.machine.ahead = self.options.eager and self.executor.dependencies and self.data.root is not None
        self.machine.ahead_below = 2 * max(1, self.executor.engine_count() or 1)
        if self.data.note and self.data.note not in self.message:
            self.message = f"{self.message}; {self.data.note}" if self.message else self.data.note

    def report(self, event: Any) -> None:
        """Hand an executor event to the run's loop (executors call this from any thread)."""
        self._loop.post(event)

    def subscribe(self, fn: Subscriber, *, critical: bool = False) -> Callable[[], None]:
        """Call ``fn(run, step)`` after every step; returns a function that unsubscribes.

        A ``critical`` subscriber (the journal) runs before the step's instructions
        are carried out; if it raises, the run submits nothing more and says why.
        Any other subscriber's exception is logged and ignored.
        """
        return self._loop.subscribe(fn, critical=critical)

    def use_recorder(self, recorder: RunRecorder) -> None:
        """Record this run with ``recorder`` from now on (it replaces an earlier one)."""
        if self.recorder is recorder:
            return
        if self._unsubscribe_recorder is not None:
            self._unsubscribe_recorder()
        self.recorder = recorder
        self._unsubscribe_recorder = self.subscribe(recorder, critical=True)

    def refresh_job_options(self) -> None:
        """Read each job type's own options (retries, timeout, ...) from its handler as it is now."""
        lifecycles = {job: current_lifecycle(job, self.handlers[job]) for job in self.graph if job in self.handlers}
        self.machine.job_options = {
            job: self.options.for_job(life.options) for job, life in lifecycles.items() if life.options
        }

    # -- reading -----------------------------------------------------------------------
    @property
    def started(self) -> bool:
        """True once the run was started (a loaded run is not, until resumed)."""
        return self._started

    @property
    def jobs(self) -> dict[str, JobRecord]:
        """Job -> :class:`JobRecord` (live): every job type, and each item of a mapped one (``"train[3]"``)."""
        return self.machine.records

    @property
    def statuses(self) -> dict[str, str]:
        """Job type -> stored status (a mapped type's sums up its items')."""
        records = self.machine.records
        return {job: records[job].status for job in self.graph}

    @property
    def display_states(self) -> dict[str, str]:
        """Job type -> display state (adds blocked, retrying, requeued)."""
        records = self.machine.records
        return {job: records[job].display_state for job in self.graph}

    @property
    def results(self) -> dict[str, Any]:
        """Job type -> result, for finished ones (a mapped type's: the list of its items' results)."""
        records = self.machine.records
        return {job: records[job].result for job in self.graph if records[job].status == FINISHED}

    def explain(self, job: str) -> str:
        """One line: why ``job`` (a type, or an item ``train[3]``) ran or was reused (docs/caching.md)."""
        return explain(self, job)

    def why(self, job: str) -> str:
        """One line: why ``job`` is not running: "waiting for parents 'a', 'b'", "blocked by 'x' failed", ..."""
        return why_waiting(self.machine, job, time.time())

    def counts(self) -> Counter:
        """How many jobs are in each display state (each item of a mapped type is one job; one not mapped yet, one)."""
        items = self.machine.topo.items
        return Counter(rec.display_state for key, rec in self.machine.records.items()
                       if not rec.mapped or items[key] is None)

    @property
    def done(self) -> bool:
        """True when nothing runs or waits to run."""
        return self._loop.idle.is_set()

    @property
    def succeeded(self) -> bool:
        """True when every job finished."""
        return all(status == FINISHED for status in self.statuses.values())

    def wait(self, timeout: float | None = None) -> Run:
        """Block until nothing can progress; return the run.

        Raises ``TimeoutError`` if it still progresses after ``timeout`` seconds
        (the run goes on). Ctrl-C stops waiting, not the run.
        """
        idle = self._loop.idle
        deadline = None if timeout is None else time.monotonic() + timeout
        while not idle.wait(0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))):
            if deadline is not None and time.monotonic() >= deadline:
                counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))
                raise TimeoutError(f"run {self.run_id} still running after {timeout} s ({counts})")
        for settle in list(self.settle_hooks):
            try:
                settle()
            except Exception:
                log.exception("overseer_nb: a display of run %s could not settle", self.run_id)
        return self

    # -- commands -------------------------------------------------------------------------
    def retry(self, job: str | None = None, *, dry_run: bool = False) -> set[str]:
        """Retry every failed/aborted job and what it blocked, or the subtree rooted at ``job``.

        Uses the handlers as they are now. Returns the job types that run again;
        with ``dry_run=True`` returns that set and changes nothing. Raises
        ``JobRunningError`` if ``job`` is running, ``RunError`` if it did not fail.
        """
        return set(self._loop.command(Retry(job, dry_run), refresh=not dry_run))

    def rerun(self, job: str, *, dry_run: bool = False) -> set[str]:
        """Run ``job`` and all its descendants again, finished or not; returns those job types."""
        return set(self._loop.command(Rerun(job, dry_run), refresh=not dry_run))

    def cancel(self) -> Run:
        """Start no new job; interrupt running ones; every unfinished job becomes aborted."""
        self._loop.command(Cancel())
        return self

    def abort(self, job: str) -> set[str]:
        """Abort ``job`` and every unfinished job depending on it; returns those job types."""
        return set(self._loop.command(Abort(job)))

    def resume(
        self, handlers: Mapping[str, Any] | None = None, *, executor: Executor | None = None, cluster: Any = None
    ) -> Run:
        """Run every job that did not finish (after ``overseer_nb.load_run``); return the run.

        Jobs recorded ``started`` (their kernel died mid-job) go back to
        unstarted; failed and aborted ones run again; finished ones do not, and
        their stored results feed their children. A finished job whose result
        the journal did not store runs again only if a child that must run
        needs it; ``run.message`` says which. handlers: job type -> handler
        (default: the run's own; a loaded run has none). executor / cluster:
        where to run (default: the run's executor, or for a loaded run the
        default cluster, checked first as ``ov.run`` does).

        Raises :class:`~overseer_nb.errors.RunError` if the run is going on
        here or in another live process, or a handler is missing.
        """
        return resume_run(self, handlers, executor, cluster)

    def _use_executor(self, executor: Executor | None, cluster: Any) -> None:
        if executor is None and cluster is None and self.executor.connected:
            return
        if executor is None:
            executor = connect(cluster, graph=self.graph, handlers=self.handlers)
        if self._started:
            self.executor.close()
            executor.start(self.report)
        self.executor = executor
        if self._started:
            self._connect_store()
        # the run is idle here; a lost cluster or a cluster without engines is behind it now
        self.machine.unhold(HOLD_CLUSTER_LOST)
        self.machine.unhold(HOLD_NO_ENGINES)

    # -- display ------------------------------------------------------------------------------
    def summary(self) -> str:
        """One line: run id, job count, counts per display state."""
        counts, extra = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items())), self.message
        extra = f" - {extra}" if extra else ""
        return f"Run {self.run_id} ({'done' if self.done else 'running'}) of {sum(self.counts().values())} jobs: {counts}{extra}"

    def __repr__(self) -> str:
        return f"<{self.summary()}>"

    @property
    def widget(self) -> Any:
        """The live graph widget of this run (one per run, made on first use)."""
        with _WIDGET_LOCK:
            if self.__dict__.get("_widget") is None:
                from .display import RunWidget  # widgets are imported only when shown

                self._widget = RunWidget(self)
            return self._widget

    def snapshot(self) -> Any:
        """A picture of the run as it is now that never changes (SVG in a notebook); the live widget goes on.

        Returns an ``overseer_nb.display.Snapshot``; as a cell's last expression it shows itself.
        """
        from .display import snapshot

        return snapshot(self)

    def _ipython_display_(self) -> None:
        from .display import display_run

        display_run(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # for front ends that do not call _ipython_display_: the widget and a static picture
        from .display import static_bundle

        bundle = static_bundle(self)
        widget_bundle = self.widget._repr_mimebundle_()
        if widget_bundle is not None:
            bundle.update(widget_bundle[0])
        return bundle


_WIDGET_LOCK = threading.Lock()
_RUNS: weakref.WeakSet[Run] = weakref.WeakSet()  # runs started in this process
