"""A run: one execution of a graph, driven by one loop thread.

Executor callbacks and user commands only enqueue; the loop is the one writer
that feeds the state machine, carries out its instructions and publishes each
step to subscribers (the journal first, then displays), so a run behaves the
same with nothing displayed.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from .errors import ArgsError
from .events import ClusterLost, Ended, EngineLost, EnginesChanged, Started
from .execution.seam import Executor, Task
from .execution.shipping import Shipper
from .graph import JobGraph
from .handlers import current_lifecycle
from .machine import RunMachine
from .options import RunOptions
from .records import ErrorInfo, JobRecord, Outcome
from .states import FINISHED
from .steps import Interrupt, Step, Submit, Withdraw

__all__ = ["Run", "new_run_id"]

log = logging.getLogger("overseer_nb")

Subscriber = Callable[["Run", Step], None]


def new_run_id() -> str:
    """A run id that sorts by time and is unique: ``20261127-191000-3fa2c1``."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def pickle_args(args: Any) -> bytes:
    """``args`` pickled, or :class:`ArgsError` naming what cannot be sent."""
    if not isinstance(args, Mapping):
        raise ArgsError(
            f"args must be a dict of the run's arguments, got {type(args).__name__} {args!r:.60}; "
            'e.g. args={"org": 123}'
        )
    import cloudpickle

    try:
        return cloudpickle.dumps(dict(args))
    except Exception as exc:
        bad = []
        for key, value in args.items():
            try:
                cloudpickle.dumps(value)
            except Exception:
                bad.append(key)
        which = f" (the value of {', '.join(map(repr, bad))})" if bad else ""
        raise ArgsError(
            f"args cannot be sent to the engines{which}: {exc}. Pass plain data "
            "(numbers, strings, lists, dicts), or a path to a file the jobs open."
        ) from exc


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
        shipper: Shipper | None = None,
    ):
        self.graph = graph
        self.handlers = handlers
        self._args_blob = pickle_args({} if args is None else args)
        self.args = dict(args or {})
        self.options = options or RunOptions()
        self.run_id = run_id or new_run_id()
        self.executor = executor
        self.machine = machine or RunMachine(graph, self.options)
        self.created = time.time()
        self.ended: float | None = None
        self.message = ""
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._loop_thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._subscribers: list[tuple[Subscriber, bool]] = []
        self.shipper = shipper or Shipper()  # a handler is pickled once per run and command
        self._started = False
        # called by wait() on the waiting thread once the run is done: a display shows
        # the final state from there (in a notebook, as output of the cell that waits)
        self.settle_hooks: list[Callable[[], None]] = []

    # -- starting ------------------------------------------------------------------
    def start(self) -> Run:
        """Begin running (``overseer_nb.run`` calls this); returns at once."""
        if self._started:
            return self
        self._started = True
        self._refresh_job_options()
        self.executor.start(self._post)
        count = self.executor.engine_count()
        if count == 0:
            self._post(EnginesChanged(0, time.time()))
        self._post(("tick",))
        return self

    def subscribe(self, fn: Subscriber, *, critical: bool = False) -> Callable[[], None]:
        """Call ``fn(run, step)`` after every step; returns a function that unsubscribes.

        A ``critical`` subscriber (the journal) runs before the step's instructions
        are carried out; if it raises, the run submits nothing more and says why.
        Any other subscriber's exception is logged and ignored.
        """
        entry = (fn, critical)
        with self._lock:
            if critical:
                self._subscribers.insert(0, entry)
            else:
                self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return unsubscribe

    # -- reading -----------------------------------------------------------------------
    @property
    def jobs(self) -> dict[str, JobRecord]:
        """Job type -> :class:`JobRecord` (live)."""
        return self.machine.records

    @property
    def statuses(self) -> dict[str, str]:
        """Job type -> stored status."""
        return {job: rec.status for job, rec in self.machine.records.items()}

    @property
    def display_states(self) -> dict[str, str]:
        """Job type -> display state (adds blocked, retrying, requeued)."""
        return {job: rec.display_state for job, rec in self.machine.records.items()}

    @property
    def results(self) -> dict[str, Any]:
        """Job type -> result, for finished jobs."""
        return {job: rec.result for job, rec in self.machine.records.items() if rec.status == FINISHED}

    def counts(self) -> Counter:
        """How many jobs are in each display state."""
        return Counter(rec.display_state for rec in self.machine.records.values())

    @property
    def done(self) -> bool:
        """True when nothing runs or waits to run."""
        return self._idle.is_set()

    @property
    def succeeded(self) -> bool:
        """True when every job finished."""
        return all(rec.status == FINISHED for rec in self.machine.records.values())

    def wait(self, timeout: float | None = None) -> Run:
        """Block until nothing can progress; return the run.

        Raises ``TimeoutError`` if it still progresses after ``timeout`` seconds
        (the run goes on). Ctrl-C stops waiting, not the run.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._idle.wait(0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))):
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
        return self._command(lambda now: self.machine.retry(job, now, dry_run=dry_run), refresh=not dry_run)

    def rerun(self, job: str, *, dry_run: bool = False) -> set[str]:
        """Run ``job`` and all its descendants again, finished or not; returns those job types."""
        return self._command(lambda now: self.machine.rerun(job, now, dry_run=dry_run), refresh=not dry_run)

    def cancel(self) -> Run:
        """Start no new job; interrupt running ones; every unfinished job becomes aborted."""
        self._command(self.machine.cancel)
        return self

    def abort(self, job: str) -> set[str]:
        """Abort ``job`` and every unfinished job depending on it; returns those job types."""
        return self._command(lambda now: self.machine.abort(job, now))

    def resume(self, handlers: Mapping[str, Any] | None = None, **where: Any) -> Run:
        """Run every job that did not finish (after ``overseer_nb.load_run``); return the run.

        Finished jobs keep their results; see ``overseer_nb._resume.resume_run``
        for the rules and the ``executor=`` / ``cluster=`` keywords.
        """
        from .running_resume import resume_run

        return resume_run(self, handlers, **where)

    def _command(self, fn: Callable[[float], Step], refresh: bool = False) -> set[str]:
        if threading.current_thread() is self._loop_thread:
            return set(self._apply_command(fn, refresh))
        fut: Future = Future()
        self._post(("command", fn, refresh, fut))
        return set(fut.result())

    def _apply_command(self, fn: Callable[[float], Step], refresh: bool) -> frozenset[str]:
        if refresh:
            # handlers are pickled again after a command: a global fixed in a cell is shipped anew
            self.shipper.forget()
            self._refresh_job_options()
        step = fn(time.time())
        self._handle(step)
        return step.selected

    def _refresh_job_options(self) -> None:
        lifecycles = {job: current_lifecycle(job, self.handlers[job]) for job in self.graph if job in self.handlers}
        self.machine.job_options = {
            job: self.options.for_job(life.options) for job, life in lifecycles.items() if life.options
        }

    # -- the loop ---------------------------------------------------------------------------
    def _post(self, item: Any) -> None:
        self._queue.put(item)
        with self._lock:
            # An idle run has no attempt out: news of one (a late IOPub message, the
            # error of an engine that died after its job ended) is stale, and so is an
            # engine joining a run that does not wait for one: the run stays done.
            if not (self._idle.is_set() and self._changes_nothing_when_idle(item)):
                self._idle.clear()
            if self._loop_thread is None:
                self._loop_thread = threading.Thread(
                    target=self._loop, name=f"overseer-run-{self.run_id}", daemon=True
                )
                self._loop_thread.start()

    def _changes_nothing_when_idle(self, item: Any) -> bool:
        """True for news that cannot make an idle run submit anything (it stays done)."""
        if isinstance(item, _ATTEMPT_NEWS):
            return True
        # engines coming or going matter to an idle run only if it waits for engines
        return isinstance(item, EnginesChanged) and not (item.count and "no engines" in self.machine.holds)

    def _loop(self) -> None:
        while True:
            wake = self.machine.next_wakeup()
            wait = None if wake is None else max(0.0, wake - time.time())
            if self._waiting_for_engines():
                wait = 1.0 if wait is None else min(wait, 1.0)
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            # What engines report is applied in one batch: one journal write and
            # one display update for everything that arrived meanwhile.
            batch = Step()
            while True:
                if isinstance(item, (Started, Ended)):
                    batch.absorb(self._report_step(item))
                elif item is not None:
                    self._handle(batch)  # commands and cluster news see every earlier report
                    batch = Step()
                    self._dispatch(item)
                if len(batch.transitions) >= _MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            batch.absorb(self.machine.tick(time.time()))
            self._handle(batch)
            with self._lock:
                if self._queue.empty() and self.machine.is_idle() and not self._waiting_for_engines():
                    self._loop_thread = None
                    self.ended = time.time()
                    self._idle.set()
                    return

    def _report_step(self, item: Started | Ended) -> Step:
        try:
            if isinstance(item, Started):
                return self.machine.started(item.job, item.attempt, item.engine, item.at)
            return self.machine.ended(item.job, item.attempt, item.outcome, time.time())
        except Exception:  # the loop must survive anything
            log.exception("overseer_nb: error while handling %r", item)
            return Step()

    def _dispatch(self, item: Any) -> None:
        now = time.time()
        try:
            if isinstance(item, EngineLost):
                self._handle(self.machine.engine_lost(item.engine, now, item.message, item.partial))
            elif isinstance(item, ClusterLost):
                self.message = item.message
                log.error("overseer_nb run %s: %s", self.run_id, item.message)
                self._handle(self.machine.cluster_lost(now, item.message))
            elif isinstance(item, EnginesChanged):
                self._engines_changed(item.count)
            elif item[0] == "command":
                _, fn, refresh, fut = item
                try:
                    fut.set_result(self._apply_command(fn, refresh))
                except BaseException as exc:
                    fut.set_exception(exc)
        except Exception:  # the loop must survive anything
            log.exception("overseer_nb: error while handling %r", item)

    def _waiting_for_engines(self) -> bool:
        """True while the run has none but the cluster is starting engines (keep waiting)."""
        return "no engines" in self.machine.holds and self.executor.engines_coming()

    def _engines_changed(self, count: int) -> None:
        """No engines: pause (so ``wait`` returns and says so); engines back: go on."""
        now = time.time()
        if count == 0 and "no engines" not in self.machine.holds:
            self.message = _NO_ENGINES
            log.warning("overseer_nb run %s: %s", self.run_id, _NO_ENGINES)
            self._handle(self.machine.pause("no engines", now))
            self._publish(Step(), critical=False)
        elif count > 0 and "no engines" in self.machine.holds:
            if self.message == _NO_ENGINES:
                self.message = ""
            self._handle(self.machine.release("no engines", now))
            self._publish(Step(), critical=False)

    def _handle(self, step: Step) -> None:
        pending = [step]
        while pending:
            step = pending.pop(0)
            if not step:
                continue
            if not self._publish(step, critical=True):
                self._hold(step)
                self._publish(step, critical=False)
                continue
            for ins in step.instructions:
                if isinstance(ins, Submit):
                    follow = self._submit(ins)
                    if follow:
                        pending.append(follow)
                elif isinstance(ins, Interrupt):
                    self.executor.interrupt(ins.job, ins.attempt, ins.engine, ins.kill_after)
                elif isinstance(ins, Withdraw):
                    self.executor.withdraw(ins.job, ins.attempt)
            self._publish(step, critical=False)

    def _hold(self, step: Step) -> None:
        self.machine.held = True
        for ins in step.instructions:
            if isinstance(ins, Submit):
                self.machine.unsent(ins.job, ins.attempt)

    def _publish(self, step: Step, *, critical: bool) -> bool:
        with self._lock:
            subscribers = [fn for fn, crit in self._subscribers if crit == critical]
        for fn in subscribers:
            try:
                fn(self, step)
            except Exception as exc:
                if critical:
                    self.message = f"the run stopped submitting jobs: {exc}"
                    log.error("overseer_nb run %s: %s", self.run_id, self.message)
                    return False
                log.exception("overseer_nb: a display of run %s failed; the run goes on", self.run_id)
        return True

    def _submit(self, ins: Submit) -> Step | None:
        job = ins.job
        opts = self.machine.options_for(job)
        try:
            handler = self.handlers[job]
        except KeyError:
            return self._unsendable(ins, ErrorInfo("MissingHandler", f"no handler for {job!r} any more"))
        in_process = getattr(self.executor, "in_process", False)
        try:
            blob = self.shipper.stages(job, handler) if in_process else self.shipper.pickle(job, handler)
        except Exception as exc:
            cause = exc.__cause__ or exc
            return self._unsendable(ins, ErrorInfo(type(cause).__name__, str(exc)))
        meta = {"id": f"{self.run_id}:{job}", "type": job, "run_id": self.run_id, "attempt": ins.attempt}
        args = self.args if in_process else self._args_blob
        task = Task(job, ins.attempt, (meta, blob, args, ins.inputs, opts.max_result_bytes))
        try:
            self.executor.submit(task)
        except Exception as exc:
            return self._unsendable(ins, ErrorInfo(type(exc).__name__, f"could not submit {job!r}: {exc}"))
        return None

    def _unsendable(self, ins: Submit, error: ErrorInfo) -> Step:
        return self.machine.ended(ins.job, ins.attempt, Outcome("unsendable", error=error), time.time())

    # -- display ------------------------------------------------------------------------------
    def summary(self) -> str:
        """One line: run id, job count, counts per display state."""
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))
        state = "done" if self.done else "running"
        extra = f" - {self.message}" if self.message else ""
        return f"Run {self.run_id} ({state}) of {len(self.graph)} jobs: {counts}{extra}"

    def __repr__(self) -> str:
        return f"<{self.summary()}>"

    @property
    def widget(self) -> Any:
        """The live graph widget of this run (one per run, made on first use)."""
        with _WIDGET_LOCK:
            if self.__dict__.get("_widget") is None:
                from .display.widget import RunWidget  # widgets are imported only when shown

                self._widget = RunWidget(self)
            return self._widget

    def _ipython_display_(self) -> None:
        from .display.widget import display_run

        display_run(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # for front ends that do not call _ipython_display_: the widget and a static picture
        from .display.widget import static_bundle

        bundle = static_bundle(self)
        widget_bundle = self.widget._repr_mimebundle_()
        if widget_bundle is not None:
            bundle.update(widget_bundle[0])
        return bundle



_WIDGET_LOCK = threading.Lock()

_ATTEMPT_NEWS = (Started, Ended, EngineLost)

_MAX_BATCH = 500  # transitions applied before the loop publishes, so displays stay live

_NO_ENGINES = (
    "no engines: the cluster has no engine to run jobs; nothing is submitted until "
    "engines join (the run then goes on by itself)"
)

