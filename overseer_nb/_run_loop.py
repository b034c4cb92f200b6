"""The one writer of a run: a loop thread that feeds the state machine and carries out its steps.

Executor reports (:mod:`overseer_nb.events`) and user commands only enqueue;
the loop applies them to the machine one at a time, publishes each step to the
critical subscribers (the journal) before acting on it, carries out its
instructions through the executor, then tells the other subscribers (displays).
"""

from __future__ import annotations

import linecache
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .cache import CodeDigests
from .errors import HandlerError
from .events import ClusterLost, Command, Ended, EngineLost, EnginesChanged, Rerun, Started
from .execution import Task
from .graph import split_key
from .handlers import current_lifecycle
from .records import ErrorInfo, Outcome
from .states import HOLD_JOURNAL, HOLD_NO_ENGINES, OUTCOME_UNSENDABLE
from .steps import Interrupt, Step, Submit, Withdraw
from .tracebacks import render_error

if TYPE_CHECKING:
    from .running import Run

__all__ = ["RunLoop", "CommandRequest", "Subscriber"]

log = logging.getLogger("overseer_nb")

Subscriber = Callable[["Run", Step], None]


@dataclass(frozen=True)
class CommandRequest:
    """A user command waiting for the loop; ``future`` gets the job types it selected."""

    command: Command
    future: Future
    refresh: bool  # ship the handlers anew first (retry, rerun, resume)


_ATTEMPT_NEWS = (Started, Ended, EngineLost)

_MAX_BATCH = 500  # transitions applied before the loop publishes, so displays stay live

NO_ENGINES_MESSAGE = (
    "no engines: the cluster has no engine to run jobs; nothing is submitted until "
    "engines join (the run then goes on by itself)"
)


class RunLoop:
    """The loop thread of one run; it runs while there is something to do."""

    def __init__(self, run: Run):
        self.run = run
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.idle = threading.Event()
        self.idle.set()
        self._subscribers: list[tuple[Subscriber, bool]] = []
        self.codes = CodeDigests()  # what each attempt's handler code was (the panel: did it change since?)

    # -- subscribers -------------------------------------------------------------------
    def subscribe(self, fn: Subscriber, *, critical: bool) -> Callable[[], None]:
        """Call ``fn(run, step)`` after every step; returns a function that unsubscribes."""
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

    def publish(self, step: Step, *, critical: bool) -> bool:
        """Give ``step`` to the (critical or other) subscribers; False if a critical one refused it."""
        with self._lock:
            subscribers = [fn for fn, crit in self._subscribers if crit == critical]
        for fn in subscribers:
            try:
                fn(self.run, step)
            except Exception as exc:
                if critical:
                    self.run.message = f"the run stopped submitting jobs: {exc}"
                    log.error("overseer_nb run %s: %s", self.run.run_id, self.run.message)
                    return False
                log.exception("overseer_nb: a display of run %s failed; the run goes on", self.run.run_id)
        return True

    # -- feeding the loop ----------------------------------------------------------------
    def post(self, item: Any) -> None:
        """Queue an executor event or a :class:`CommandRequest`; start the thread if it sleeps."""
        self._queue.put(item)
        with self._lock:
            # An idle run has no attempt out: news of one (a late IOPub message, the
            # error of an engine that died after its job ended) is stale, and so is an
            # engine joining a run that does not wait for one: the run stays done.
            if not (self.idle.is_set() and self._changes_nothing_when_idle(item)):
                self.idle.clear()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name=f"overseer-run-{self.run.run_id}", daemon=True
                )
                self._thread.start()

    def command(self, command: Command, *, refresh: bool = False) -> frozenset[str]:
        """Apply ``command`` on the loop thread and return the job types it selected."""
        if threading.current_thread() is self._thread:
            return self.apply_command(command, refresh)
        future: Future = Future()
        self.post(CommandRequest(command, future, refresh))
        return future.result()

    def apply_command(self, command: Command, refresh: bool) -> frozenset[str]:
        """Apply ``command`` now, on the calling thread (the loop's, or before the run starts)."""
        if refresh:
            # handlers are shipped anew after a command: a global fixed in a cell goes out again
            self.run.executor.handlers_changed()
            self.codes.forget()
            self.run.refresh_job_options()
            self.run.cache.forget()
        step = self.run.machine.command(command, time.time())
        if isinstance(command, Rerun) and not command.dry_run:
            self.run.cache.forced |= step.selected  # a rerun runs, whatever the cache holds
        self.handle(step)
        return step.selected

    def _changes_nothing_when_idle(self, item: Any) -> bool:
        """True for news that cannot make an idle run submit anything (it stays done)."""
        if isinstance(item, _ATTEMPT_NEWS):
            return True
        # engines coming or going matter to an idle run only if it waits for engines
        return isinstance(item, EnginesChanged) and not (item.count and HOLD_NO_ENGINES in self.run.machine.holds)

    # -- the loop thread -----------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            machine = self.run.machine  # read anew: a refused write replaces it
            wake = machine.next_wakeup()
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
                    self.handle(batch)  # commands and cluster news see every earlier report
                    batch = Step()
                    self._dispatch(item)
                if len(batch.transitions) >= _MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            batch.absorb(self.run.machine.tick(time.time()))
            self.handle(batch)
            with self._lock:
                if self._queue.empty() and self.run.machine.is_idle() and not self._waiting_for_engines():
                    self.run.data.run_idle()
                    self._thread = None
                    self.run.ended = time.time()
                    self.idle.set()
                    return

    def _report_step(self, item: Started | Ended) -> Step:
        try:
            if isinstance(item, Ended) and item.outcome.error is not None and item.outcome.error.frames:
                item = self._rendered(item)
            return self.run.machine.handle(item, time.time())
        except Exception:  # the loop must survive anything
            log.exception("overseer_nb: error while handling %r", item)
            return Step()

    def _rendered(self, item: Ended) -> Ended:
        """The engine sent the error's frames: its text is made here, with the source of cells this kernel has."""
        rec = self.run.machine.records.get(item.job)
        sent = next((a.code for a in reversed(rec.attempts) if a.number == item.attempt), None) if rec else None
        error = render_error(item.outcome.error, _source_lines, self.codes.files(sent))  # type: ignore[arg-type]
        return replace(item, outcome=replace(item.outcome, error=error))

    def _dispatch(self, item: Any) -> None:
        run = self.run
        try:
            if isinstance(item, CommandRequest):
                try:
                    item.future.set_result(self.apply_command(item.command, item.refresh))
                except BaseException as exc:
                    item.future.set_exception(exc)
            elif isinstance(item, EnginesChanged):
                self._engines_changed(item.count)
            elif isinstance(item, ClusterLost):
                run.message = item.message
                log.error("overseer_nb run %s: %s", run.run_id, item.message)
                self.handle(run.machine.handle(item, time.time()))
            elif isinstance(item, EngineLost):
                self.handle(run.machine.handle(item, time.time()))
                lost = run.data.lost_with(item.engine)
                if lost:  # their results were only in that engine's memory: they run again
                    why = f"engine {item.engine} died before writing it to the result store"
                    self.handle(run.machine.results_lost(lost, time.time(), why))
            else:
                raise TypeError(f"the run loop got {type(item).__name__}, not an event or a command")
        except Exception:  # the loop must survive anything
            log.exception("overseer_nb: error while handling %r", item)

    def _waiting_for_engines(self) -> bool:
        """True while the run has none but the cluster is starting engines (keep waiting)."""
        return HOLD_NO_ENGINES in self.run.machine.holds and self.run.executor.engines_coming()

    def _engines_changed(self, count: int) -> None:
        """No engines: pause (so ``wait`` returns and says so); engines back: go on."""
        run, now = self.run, time.time()
        run.machine.max_out = run.executor.queue_limit()
        run.machine.ahead_below = 2 * max(1, count)
        held = HOLD_NO_ENGINES in run.machine.holds
        if count == 0 and not held:
            run.message = NO_ENGINES_MESSAGE
            log.warning("overseer_nb run %s: %s", run.run_id, NO_ENGINES_MESSAGE)
            self.handle(run.machine.pause(HOLD_NO_ENGINES, now))
            self.publish(Step(), critical=False)
        elif count > 0 and held:
            if run.message == NO_ENGINES_MESSAGE:
                run.message = ""
            self.handle(run.machine.release(HOLD_NO_ENGINES, now))
            self.publish(Step(), critical=False)

    # -- carrying out a step ---------------------------------------------------------------
    def handle(self, step: Step) -> None:
        """Record ``step``, carry out its instructions, show it (and the steps they lead to)."""
        pending = [step]
        while pending:
            step = pending.pop(0)
            if not step:
                continue
            if not self.publish(step, critical=True):
                self._refused(step)
                return  # what followed from the step is not recorded either
            executor = self.run.executor
            submits = [ins for ins in step.instructions if isinstance(ins, Submit)]
            reused = self.run.cache.check(submits) if submits else {}
            for ins in step.instructions:
                if isinstance(ins, Submit):
                    if ins.job in reused:  # an earlier run made this result: finish it from there
                        from_run, data, length, digests = reused[ins.job]
                        pending.append(self.run.machine.cached(ins.job, ins.attempt, data, length, from_run,
                                                               time.time(), digests))
                        continue
                    follow = self._submit(ins)
                    if follow:
                        pending.append(follow)
                elif isinstance(ins, Interrupt):
                    executor.interrupt(ins.job, ins.attempt, ins.engine, ins.kill_after)
                elif isinstance(ins, Withdraw):
                    executor.withdraw(ins.job, ins.attempt)
            self.run.data.after_step(step)
            self.publish(step, critical=False)

    def _refused(self, step: Step) -> None:
        """A critical subscriber (the journal) refused ``step``: hold, and show only what was recorded.

        Attempts that are out go back (withdrawn, or interrupted: the journal
        does not know they run); the run falls back to the machine the journal's
        recorder rebuilds from what it committed, and displays are told so. A
        resume goes on from there once the journal takes writes again.
        """
        run = self.run
        machine = run.machine
        for job, rec in machine.records.items():
            last = rec.attempts[-1] if rec.attempts else None
            if last is None or last.outcome is not None:
                continue
            if last.start is None:
                run.executor.withdraw(job, last.number)
            else:
                run.executor.interrupt(job, last.number, last.engine, machine.options_for(job).kill_grace)
        rebuild = getattr(run.recorder, "recorded_machine", None)
        if rebuild is None:  # another critical subscriber: hold where the run is, show nothing new
            machine.hold(HOLD_JOURNAL)
            for ins in step.instructions:
                if isinstance(ins, Submit):
                    machine.unsent(ins.job, ins.attempt)
            return
        recorded, shown = rebuild(run)
        recorded.hold(HOLD_JOURNAL)
        run.machine = recorded
        run.message += (
            ". The run holds and shows what the journal recorded; jobs that were out were stopped. "
            "When the journal can be written again, run.resume() goes on from there."
        )
        self.publish(shown, critical=False)

    def _submit(self, ins: Submit) -> Step | None:
        run, job = self.run, ins.job
        kind, index = split_key(job)  # an item of a mapped type runs its type's handler
        try:
            handler = run.handlers[kind]
        except KeyError:
            return self._unsendable(ins, ErrorInfo("MissingHandler", f"no handler for {kind!r} any more"))
        try:
            life = current_lifecycle(kind, handler)
        except Exception as exc:
            return self._unsendable(ins, ErrorInfo(type(exc).__name__, str(exc)))
        opts = run.machine.options_for(job)
        task = Task(
            job=job,
            index=index,
            attempt=ins.attempt,
            run_id=run.run_id,
            stages=(life.pre_process, life.process, life.post_process),
            args=run.args,
            args_blob=run.args_blob,
            max_result_bytes=opts.max_result_bytes,
            max_output_chars=opts.max_output_chars,
            after=ins.after,
            follow=ins.follow,
            **run.data.task_fields(job, ins.inputs, ins.shared),
        )
        self.codes.note(run.machine.records[job], ins.attempt, task.stages)
        try:
            run.executor.submit(task)
        except HandlerError as exc:  # the handler cannot be shipped
            cause = exc.__cause__ or exc
            return self._unsendable(ins, ErrorInfo(type(cause).__name__, str(exc)))
        except Exception as exc:
            return self._unsendable(ins, ErrorInfo(type(exc).__name__, f"could not submit {job!r}: {exc}"))
        return None

    def _unsendable(self, ins: Submit, error: ErrorInfo) -> Step:
        outcome = Outcome(OUTCOME_UNSENDABLE, error=error)
        return self.run.machine.ended(ins.job, ins.attempt, outcome, time.time())


def _source_lines(filename: str) -> list[str]:
    """A file's lines as they are now (a cell's as IPython cached them: those never go stale)."""
    linecache.checkcache(filename)
    return linecache.getlines(filename)
