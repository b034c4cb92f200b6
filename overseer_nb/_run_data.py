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
from .records import ItemOf, ItemsOf, StoredResult
from .states import FINISHED
from .steps import SHARE_MEMORY, SHARE_STORE, AfterResult, Step
from .store import begin_session, result_path

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
        # job -> its stored result an engine may hold in memory, and the jobs that will read it, not started yet
        self._held: dict[str, tuple[StoredResult, set[str]]] = {}
        self._holding = False  # some engine may hold a result of this run
        # '' for the kernel that started the run; a resume's own token (attempts an earlier kernel sent do not run)
        self.session = ""
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

    def begin_session(self, session: str) -> None:
        """A resume: this kernel's attempts are ``session``'s, and tasks an earlier kernel sent do not start.

        Said in the store, where an engine looks before it runs an attempt of
        this run, before the cluster is asked what the earlier kernel sent.
        """
        self.session = session
        if self.wanted is None:
            return
        try:
            begin_session(self.wanted, self.run.run_id, session)
        except OSError as exc:
            log.warning("overseer_nb run %s: cannot mark the store for this resume (%s); a task the earlier "
                        "kernel sent ahead may still run when its parents end", self.run.run_id, exc)

    def task_fields(self, job: str, inputs: Mapping[str, Any], shared: str = "") -> dict[str, Any]:
        """The data-plane fields of ``job``'s task: inputs as the engine reads them, its store plan, placement.

        ``shared`` (``steps.Submit.shared``): a child may be sent ahead of it.
        ``store``: its result goes to the store, a small one written before its
        report goes back (that child starts only after that); ``memory``: its one
        such child runs on its engine, and a small result stays there too.
        """
        stored: list[StoredResult] = []
        where = (self.root, self.run.run_id, self.session)
        sent = {parent: _for_engine(data, stored, where) for parent, data in inputs.items()}
        biggest = max(stored, key=lambda r: r.nbytes, default=None)
        plan = None
        if self.root is None and self.run.machine.options_for(job).cache:
            plan = {"digest": True}  # results come back inline; the cache still needs item digests
        elif self.root is not None:
            machine = self.run.machine
            children = machine.topo.children(job)
            caching = machine.options_for(job).cache
            plan = {
                "root": self.root,
                "session": self.session,
                "inline": 0 if shared == SHARE_STORE else self._settings.store_inline_bytes,
                "sync": self._settings.store_inline_bytes if shared == SHARE_STORE else 0,
                "keep": shared == SHARE_MEMORY,
                "memory": self._settings.engine_memory_bytes,
                "hold": bool(children),
                # the cache compares contents: its own, or a child's that uses the cache
                "digest": caching or any(machine.options_for(c).cache for c in children),
            }
        if biggest is None:
            return {"inputs": sent, "store": plan}
        wait = biggest.nbytes >= self._settings.follow_input_bytes
        return {"inputs": sent, "store": plan, "prefer": biggest.engine, "prefer_wait": wait}

    def after_step(self, step: Step) -> None:
        """Note results engines now hold; let an engine forget one once every job that needs it has finished.

        Finished, not started: a job that started may still go back before it
        read its input (sent ahead to an engine where that input was not, it is
        sent again to the engine that holds it).
        """
        if not step.transitions:
            return
        if self.run.machine.ahead:
            self._holding = True  # small results sent ahead are held too, until the run ends
        topo, jobs = self.run.machine.topo, self.run.machine.records
        by_engine: dict[Any, list[str]] = {}
        for t in step.transitions:
            if t.new != FINISHED or t.job not in jobs:
                continue
            for parent in topo.parents(t.job):
                found = self._held.get(parent)
                if found is None:
                    continue
                found[1].discard(t.job)
                if not found[1]:
                    del self._held[parent]
                    by_engine.setdefault(found[0].engine, []).append(found[0].path)
            stored = jobs[t.job].stored
            readers = [c for c in topo.children(t.job) if not topo.is_gate(c)]
            small = stored is not None and stored.nbytes <= self._settings.store_inline_bytes
            if stored is not None and stored.engine is not None and readers and not small:
                self._held[t.job] = (stored, set(readers))
                self._holding = True
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


def _for_engine(data: Any, stored: list[StoredResult], where: tuple) -> Any:
    """An input as ``execution.holding.resolve`` reads it on the engine; stored results are noted in ``stored``.

    A result not made yet (:class:`~overseer_nb.steps.AfterResult`) is where
    that attempt will store it, marked ``after``: a task that finds nothing
    there ends without running (its parent did not finish). ``where``: the
    store's root, the run id and this kernel's session.
    """
    if isinstance(data, AfterResult):
        root, run_id, session = where
        return {"path": result_path(root, run_id, data.job, data.attempt, session), "nbytes": 0, "after": True}
    if isinstance(data, ItemOf):
        return {"item": data.index, "of": _for_engine(data.data, stored, where)}
    if isinstance(data, ItemsOf):
        return {"items": [_for_engine(part, stored, where) for part in data.items]}
    if data is None or isinstance(data, (bytes, bytearray)):
        return data
    stored.append(data)
    return data.to_json()
