"""The run's side of the data plane (SPEC §11): where its results go and what engines hold.

One :class:`DataPlane` per run. When the run starts it asks the executor
whether every engine can use the result store; if so, each task says where
its result goes (``Task.store``), inputs travel as references, and a task is
placed near its biggest input. Otherwise results are relayed through the
kernel, and the run's message says so once. It also lets engines forget what
no job needs any more, and finds the results an engine took with it when it
died.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .config import defaults
from .records import StoredResult
from .states import FINISHED, STARTED, UNSTARTED
from .steps import Step

if TYPE_CHECKING:
    from .running import Run

__all__ = ["DataPlane"]

log = logging.getLogger("overseer_nb")


class DataPlane:
    """Where ``run``'s results go (``root``, None: relayed through the kernel) and what engines hold."""

    def __init__(self, run: Run, root: str | None):
        self.run = run
        self.wanted = root  # the store the run was given; ``root`` once the engines can use it
        self.root: str | None = None
        self.note = ""  # why results are relayed through the kernel ('' : they are not, or silently)
        self._held: dict[str, StoredResult] = {}  # job -> its stored result an engine may hold in memory
        self._holding = False  # some engine may hold a result of this run
        self._settings = defaults()

    def connect(self) -> None:
        """Ask the run's executor whether its engines can use the store (at start and at each resume)."""
        self.root, self.note = None, ""
        if self.wanted is None:
            return
        problem = self.run.executor.store_problem(self.wanted)
        if problem is None:
            self.root = self.wanted
        elif problem:
            self.note = f"results are relayed through the kernel: {problem}"
            log.warning("overseer_nb run %s: %s", self.run.run_id, self.note)

    def task_fields(self, job: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The data-plane fields of ``job``'s task: inputs as the engine reads them, its store plan, placement."""
        sent: dict[str, Any] = {}
        biggest: StoredResult | None = None
        for parent, data in inputs.items():
            if data is None or isinstance(data, (bytes, bytearray)):
                sent[parent] = data
                continue
            sent[parent] = data.to_json()
            if biggest is None or data.nbytes > biggest.nbytes:
                biggest = data
        plan = None
        if self.root is not None:
            plan = {
                "root": self.root,
                "inline": self._settings.store_inline_bytes,
                "memory": self._settings.engine_memory_bytes,
                "hold": bool(self.run.graph.children(job)),
            }
        if biggest is None:
            return {"inputs": sent, "store": plan}
        wait = biggest.nbytes >= self._settings.follow_input_bytes
        return {"inputs": sent, "store": plan, "prefer": biggest.engine, "prefer_wait": wait}

    def after_step(self, step: Step) -> None:
        """Note results engines now hold; let an engine forget one once every job that needs it has started."""
        if not step.transitions:
            return
        jobs = self.run.machine.records
        parents: set[str] = set()
        for t in step.transitions:
            if t.new == FINISHED:
                stored = jobs[t.job].stored
                if stored is not None and stored.engine is not None and self.run.graph.children(t.job):
                    self._held[t.job] = stored
                    self._holding = True
            elif t.new == STARTED:
                parents.update(p for p in self.run.graph.parents(t.job) if p in self._held)
        by_engine: dict[Any, list[str]] = {}
        for parent in parents:
            if all(jobs[c].status != UNSTARTED for c in self.run.graph.children(parent)):
                stored = self._held.pop(parent)
                by_engine.setdefault(stored.engine, []).append(stored.path)
        for engine, paths in by_engine.items():
            self.run.executor.release(engine, paths)

    def lost_with(self, engine: Any) -> list[str]:
        """Finished jobs whose result only the dead ``engine`` had: it never reached the store."""
        return [
            job for job, rec in self.run.machine.records.items()
            if rec.status == FINISHED and rec.stored is not None and rec.stored.engine == engine
            and not rec.stored.exists()
        ]

    def run_idle(self) -> None:
        """The run has nothing more to do: engines forget its results (they stay in the store)."""
        if self._holding:
            self._held.clear()
            self._holding = False
            self.run.executor.release_run(self.run.run_id)
