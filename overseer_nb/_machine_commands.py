"""The half of the run state machine that acts on what a user (or the run) asks.

Retry, rerun, cancel, abort, pauses, and restoring a run from the journal; user
commands (:mod:`.events`) come in through :meth:`UserCommands.command`. Pure
like the rest of :class:`~overseer_nb.machine.RunMachine`, which builds on this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, get_args

from ._machine_base import MachineBase
from .errors import JobRunningError, RunError
from .events import Abort, Cancel, Command, Rerun, Resume, Retry
from .records import Attempt
from .states import ABORTED, BAD_STATUSES, FAILED, FINISHED, STARTED, UNSTARTED, mapped_status
from .steps import Step, Withdraw

__all__ = ["UserCommands"]


class UserCommands(MachineBase):
    """Retry, rerun, cancel, abort, pause/release, restore/resume."""

    def command(self, cmd: Command, at: float) -> Step:
        """Apply the user command ``cmd`` (:mod:`overseer_nb.events`) at time ``at``.

        The same as calling :meth:`retry`, :meth:`rerun`, :meth:`cancel`,
        :meth:`abort` or :meth:`resume`, and raises what they raise; a ``cmd``
        that is no command raises :class:`~overseer_nb.errors.RunError`.
        """
        apply = _ON_COMMAND.get(type(cmd))
        if apply is None:
            names = ", ".join(t.__name__ for t in _ON_COMMAND)
            raise RunError(f"the run state machine takes the commands {names}, not {type(cmd).__name__}")
        return apply(self, cmd, at)

    def pause(self, reason: str, at: float) -> Step:
        """Submit nothing until :meth:`release` of ``reason``; withdraw queued attempts.

        Attempts that an engine already runs go on. ``reason`` is one of
        ``states.HOLDS`` (else :class:`~overseer_nb.errors.RunError`).
        """
        self.hold(reason)
        step = Step()
        for job in sorted(self._inflight, key=self.topo.rank):
            j = self._jobs[job]
            if j.status == UNSTARTED:
                step.instructions.append(Withdraw(job, j.attempt))
                self.unsent(job, j.attempt)
        return step

    def release(self, reason: str | None, at: float) -> Step:
        """Lift the hold ``reason`` (None: every hold) and submit what is ready."""
        if reason is None:
            self._holds.clear()
        else:
            self.unhold(reason)
        step = Step()
        self._schedule(step, at)
        return step

    def skip_past(self, job: str, attempt: int) -> None:
        """Attempt ``attempt`` of ``job`` was sent by an earlier kernel: the next one is numbered after it."""
        j = self._jobs[job]
        if not j.submitted:
            j.attempt = max(j.attempt, attempt)

    def unsent(self, job: str, attempt: int) -> None:
        """Forget attempt ``attempt`` of ``job``: it was never sent, or was withdrawn unstarted.

        Its number stays used: the next submission is ``attempt + 1``, so a
        withdrawn task that an engine runs anyway (a withdrawal cannot reach an
        engine that joins later) can never pass for the new one; its news is
        fenced. So attempt numbers may skip one; ``job.attempt`` counts submissions.
        """
        j = self._jobs[job]
        if j.attempt != attempt or not j.submitted or j.status != UNSTARTED:
            return
        self._forget_unsent(job)

    # -- user commands ---------------------------------------------------------
    def retry(self, job: str | None, at: float, *, dry_run: bool = False) -> Step:
        """Retry failed/aborted jobs (all, or the subtree rooted at ``job``).

        ``step.selected`` is the set of job types that run again.
        """
        if job is None:
            roots = [self._retry_root(j) for j in self.topo.keys()
                     if self._jobs[j].status in BAD_STATUSES and not self._follows_items(j)]
        else:
            self._check_known(job)
            roots = self._retry_roots(job)
        selected = self._retry_set(roots)
        step = Step(selected=self._named(selected))
        if dry_run or not selected:
            return step
        self._reset(step, selected, "retry", at)
        return step

    def rerun(self, job: str, at: float, *, dry_run: bool = False) -> Step:
        """Run ``job`` and all its descendants again, finished or not."""
        self._check_known(job)
        roots = self.topo.item_keys(job) if self._follows_items(job) else [job]
        selected = set(roots)
        for root in roots:
            selected |= self.topo.descendants(root)
        busy = sorted(j for j in selected if j in self._inflight)
        if busy:
            raise JobRunningError(
                f"cannot rerun {job!r}: {', '.join(map(repr, busy))} "
                f"{'is' if len(busy) == 1 else 'are'} running now. Wait for "
                f"{'it' if len(busy) == 1 else 'them'} to end (run.wait()) or cancel the run first."
            )
        step = Step(selected=self._named(selected))
        if not dry_run:
            self._reset(step, selected, "rerun", at)
        return step

    def cancel(self, at: float) -> Step:
        """Start nothing new; interrupt running jobs; abort every unfinished job."""
        step = Step()
        self.cancelled = True
        self._timers.clear()
        for job in list(self.topo.keys()):
            j = self._jobs[job]
            if j.status in (UNSTARTED, STARTED) and not self._follows_items(job):
                self._stop_attempt(step, job, at)
                self._move(step, job, ABORTED, "cancel", at, "the run was cancelled")
        self._ready.clear()
        self._refresh_blocked(step, [j for j in self.topo.keys() if self._jobs[j].status == ABORTED])
        return step

    def abort(self, job: str, at: float) -> Step:
        """Abort ``job`` (unstarted or running) and every unfinished job depending on it."""
        self._check_known(job)
        status = self._jobs[job].status
        if status not in (UNSTARTED, STARTED):
            raise RunError(
                f"cannot abort {job!r}: it is already {status}. Only unstarted or running "
                "jobs can be aborted."
            )
        roots = [k for k in self.topo.item_keys(job) if self._jobs[k].status in (UNSTARTED, STARTED)] \
            if self._follows_items(job) else [job]
        tree = set(roots)
        for root in roots:
            tree |= self.topo.descendants(root)
        step = Step(selected=self._named(tree))
        self._abort_tree(step, roots, "abort", at, "aborted by the user")
        self._schedule(step, at)
        return step

    def restore_items(self, job: str, count: int) -> None:
        """Before :meth:`restore` of its items: mapped ``job`` had ``count`` items in the journal."""
        self._expand(Step(), job, count, 0.0)
        for key in self.topo.item_keys(job):
            self._ready.discard(key)

    def restore(self, job: str, status: str, attempts: list[Attempt], result: Any, message: str = "",
                *, cached: bool = False) -> None:
        """Set a job's state from a journal, before the run starts again.

        A job found ``started`` goes back to ``unstarted``: its attempt was lost with its kernel.
        ``cached``: it finished by reusing an earlier run's result.
        """
        j, rec = self._jobs[job], self.records[job]
        j.cached = cached and status == FINISHED
        j.status = UNSTARTED if status == STARTED else status
        j.attempt = max((a.number for a in attempts), default=0)
        rec.attempts = list(attempts)
        rec.result_data = result
        rec.message = message
        rec.status = j.status

    def finish_restore(self) -> Step:
        """Recompute readiness and blocking after :meth:`restore` calls."""
        step = Step()
        keys = list(self.topo.keys())
        for t in self.graph.mapped:  # a mapped type's status and counts from its items
            if self.topo.items[t] is not None:
                counts: dict[str, int] = {}
                for key in self.topo.item_keys(t):
                    counts[self._jobs[key].status] = counts.get(self._jobs[key].status, 0) + 1
                self._counts[t] = counts
                self._jobs[t].status = self.records[t].status = mapped_status(counts, self.topo.items[t])
        self._refresh_ready(keys)
        self._refresh_blocked(step, keys)
        for job in keys:
            self._note_display(step, job)
        return step

    def resume(self, jobs: Iterable[str], at: float) -> Step:
        """Run ``jobs`` again after a restart: failed, aborted or finished ones go back to unstarted.

        Reason ``resume``; the jobs become ready as their parents finish.
        ``step.selected`` is ``jobs``.
        """
        selected = set(jobs)
        for job in selected:
            self._check_known(job)
        step = Step(selected=frozenset(selected))
        if selected:
            self._reset(step, selected, "resume", at)
        return step

    def _named(self, keys: set[str]) -> frozenset[str]:
        """``keys`` as commands name them: items as ``train[3]``, other jobs by type, mapped types not at all."""
        return frozenset(k for k in keys if not self.topo.is_gate(k))

    def _retry_root(self, job: str) -> str:
        """What retrying failed ``job`` runs first: a mapped type whose parent gave no list maps that parent anew."""
        if self.topo.is_gate(job) and self.topo.items[job] is None:
            return self.graph.each_of(job) or job
        return job

    def _retry_roots(self, job: str) -> list[str]:
        if self._follows_items(job):
            bad = [k for k in self.topo.item_keys(job) if self._jobs[k].status in BAD_STATUSES]
            if not bad:
                raise RunError(f"cannot retry {job!r}: none of its {self.topo.items[job]} items failed or was aborted")
            return bad
        self._check_retryable(job)
        return [self._retry_root(job)]

    def _check_retryable(self, job: str) -> None:
        j = self._jobs[job]
        if j.status in BAD_STATUSES:
            return
        if j.status == STARTED or job in self._inflight:
            raise JobRunningError(
                f"cannot retry {job!r}: it is running now (attempt {j.attempt}). "
                "Wait for it to end (run.wait()) or cancel it first."
            )
        if j.status == FINISHED:
            raise RunError(
                f"cannot retry {job!r}: it finished. Use run.rerun({job!r}) to run it "
                "and its descendants again."
            )
        if j.blocked:
            culprits = sorted(
                a for a in self.topo.ancestors(job) if self._jobs[a].status in BAD_STATUSES
            )
            raise RunError(
                f"cannot retry {job!r}: it has not run, it is blocked by "
                f"{', '.join(map(repr, culprits))}. Retry that job, or run.retry() for all."
            )
        raise RunError(f"cannot retry {job!r}: it has not failed, it is waiting to run.")

    def _retry_set(self, roots: list[str]) -> set[str]:
        selected = set(roots)
        candidates: set[str] = set()
        for root in roots:
            candidates |= {
                d for d in self.topo.descendants(root)
                if self._jobs[d].status in (UNSTARTED, FAILED, ABORTED) and d not in self._inflight
            }
        # a candidate runs only if no failed/aborted ancestor outside the set keeps it blocked
        stays_blocked: set[str] = set()
        for job in sorted(candidates - selected, key=self.topo.rank):
            for p in self.topo.parents(job):
                bad = self._jobs[p].status in BAD_STATUSES and p not in selected
                if bad or p in stays_blocked or (self._jobs[p].blocked and p not in selected):
                    stays_blocked.add(job)
                    break
            else:
                selected.add(job)
        return selected


# Each user command, as the call it stands for.
_ON_COMMAND: dict[type, Callable[[UserCommands, Any, float], Step]] = {
    Retry: lambda m, c, at: m.retry(c.job, at, dry_run=c.dry_run),
    Rerun: lambda m, c, at: m.rerun(c.job, at, dry_run=c.dry_run),
    Cancel: lambda m, c, at: m.cancel(at),
    Abort: lambda m, c, at: m.abort(c.job, at),
    Resume: lambda m, c, at: m.resume(c.jobs, at),
}
assert set(_ON_COMMAND) == set(get_args(Command)), "every user command needs an entry in _ON_COMMAND"
