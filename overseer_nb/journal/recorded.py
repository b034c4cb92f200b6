"""What the journal holds of a run, mirrored in memory.

When the journal refuses a write, the run falls back to this: it shows and
goes on from what was recorded, never from a step the journal lacks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..machine import RunMachine
from ..records import Attempt, ErrorInfo
from ..states import ATTEMPT_LOST
from ..steps import Step

if TYPE_CHECKING:
    from ..running import Run

__all__ = ["RecordedState", "STOPPED"]

STOPPED = ErrorInfo(
    "JournalRefused",
    "the journal refused a write while this attempt was out; it was stopped and runs again on resume",
)


@dataclass
class _Job:
    status: str
    attempts: list[Attempt]
    result: bytes | None
    message: str


class RecordedState:
    """Each job of one run as of the last write the journal committed."""

    def __init__(self) -> None:
        self.jobs: dict[str, _Job] = {}
        self.items: dict[str, int | None] = {}  # mapped type -> its items when last recorded

    def take(self, run: Run, jobs: Iterable[str]) -> None:
        """Copy the live records of ``jobs``: the journal has just committed them."""
        records = run.jobs
        for job in jobs:
            rec = records.get(job)
            if rec is not None:
                self.jobs[job] = _Job(rec.status, [replace(a) for a in rec.attempts], rec.result_data, rec.message)
        for t in run.graph.mapped:  # which items are known now (the recorder wrote them with this step)
            self.items[t] = run.machine.topo.items[t]
        for job in [j for j in self.jobs if j not in records]:
            del self.jobs[job]

    def machine(self, run: Run) -> tuple[RunMachine, Step]:
        """A machine in the recorded state, and the display step that shows it.

        Attempts that were out (queued or running) when the write was refused
        end as lost: the run stopped them, and a resume runs their jobs again.
        They are kept (though the journal lacks them) so that attempt numbers
        never repeat: a late report of a stopped attempt is ignored.
        """
        machine = RunMachine(run.graph, run.options, dict(run.machine.job_options))
        for t, count in self.items.items():
            if count is not None and machine.topo.items[t] is None:
                machine.restore_items(t, count)
        for job, state in self.jobs.items():
            if job not in machine.topo:
                continue
            attempts = [replace(a) for a in state.attempts]
            known = max((a.number for a in attempts), default=0)
            # how they ended, if they did, is not recorded: stopped, as far as the run goes
            live = run.jobs.get(job)
            attempts += [replace(a, outcome=None) for a in (live.attempts if live else []) if a.number > known]
            for a in attempts:
                if a.outcome is None:
                    a.outcome, a.error = ATTEMPT_LOST, STOPPED
            machine.restore(job, state.status, attempts, state.result, state.message)
        return machine, machine.finish_restore()
