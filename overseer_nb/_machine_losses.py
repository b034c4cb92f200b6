"""Results lost in the machine: a stored result that cannot be read makes its job run again.

The children that need it wait for it again (SPEC §11: an engine that died
before writing a result, a file gone from the store). A mixin of
:class:`~overseer_nb._machine_base.MachineBase`; pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .records import ErrorInfo, Outcome
from .states import ATTEMPT_LOST, FINISHED, STARTED, UNSTARTED
from .steps import Step

if TYPE_CHECKING:
    from ._machine_base import MachineBase

__all__ = ["LostResults"]


class LostResults:
    """Results lost with an engine or the store, and the jobs that read them."""

    def results_lost(self: MachineBase, jobs: list[str], at: float, message: str) -> Step:
        """The stored results of finished ``jobs`` cannot be read (never written: their engine died first).

        Each runs again, and what depends on it waits: an attempt of a child that
        is out already is stopped and goes back to unstarted (it has not got the
        input, so nothing it did counts).
        """
        step = Step()
        lost = [job for job in jobs if self._jobs[job].status == FINISHED]
        for job in sorted(lost, key=self.topo.rank):
            self._lose_result(step, job, at, message)
            for child in self.topo.children(job):
                if child in self._inflight:
                    why = f"its input {job!r} is being made again: {message}"
                    self._stop_attempt(step, child, at)
                    attempt = self.records[child].attempts[-1]
                    attempt.outcome, attempt.error = ATTEMPT_LOST, ErrorInfo("InputLost", why)
                    self._back_for_input(step, child, at, why)
        self._schedule(step, at)
        return step

    def _on_input_lost(self: MachineBase, step: Step, job: str, outcome: Outcome, at: float) -> None:
        """A parent's stored result could not be read: the parent runs again, ``job`` waits for it.

        Counted with the job's engine losses: an engine that can never read the
        store (another host without the shared folder) fails the job in the end
        instead of running its parent forever.
        """
        j, opts = self._jobs[job], self.options_for(job)
        j.losses += 1
        err = outcome.error or ErrorInfo("InputLost", outcome.message)
        self._end_attempt(job, outcome, ATTEMPT_LOST, at, err)
        if j.losses >= opts.max_engine_losses:
            msg = (f"its input could not be read {j.losses} times (max_engine_losses={opts.max_engine_losses}); "
                   f"last: {outcome.message}. Do all engines share the result store (OVERSEER_NB_STORE)?")
            self._fail(step, job, "input lost too often", at, ErrorInfo("InputLost", msg), msg)
            return
        for parent in outcome.lost_inputs:
            if parent in self._jobs and self._jobs[parent].status == FINISHED:
                self._lose_result(step, parent, at, outcome.message)
        self._back_for_input(step, job, at, outcome.message)

    def _lose_result(self: MachineBase, step: Step, job: str, at: float, message: str) -> None:
        """Finished ``job``'s result is gone: back to unstarted, its children wait for it again."""
        self.records[job].result_data = None
        self._jobs[job].waiting_reason = "result lost"
        self._move(step, job, UNSTARTED, "result lost", at, f"its result was lost ({message}); it runs again")
        self._refresh_ready([job, *self.topo.children(job)])

    def _back_for_input(self: MachineBase, step: Step, job: str, at: float, message: str) -> None:
        """Requeue a started ``job`` whose attempt ended (or was stopped) for want of an input."""
        j = self._jobs[job]
        j.waiting_reason = "input lost"
        if j.status == STARTED:
            self._move(step, job, UNSTARTED, "input lost", at, message)
        self._refresh_ready([job])

