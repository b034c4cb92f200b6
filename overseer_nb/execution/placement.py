"""The data plane's part of the connection: placing tasks near their input, the store check, releases.

:class:`Placement` is a base of :class:`~overseer_nb.execution.connection.Connection`:
it sends a task to the engine that holds its biggest input when that engine
is idle, asks every engine once whether it shares the result store, and
tells engines which results they may drop from memory.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .holding import release, release_run

__all__ = ["Placement"]

log = logging.getLogger("overseer_nb")


class Placement:
    """See the module docstring; needs ``client``, ``view``, ``lost``, ``closed``, ``_lock``, ``_flights``, ``_dead``."""

    client: Any
    view: Any
    lost: bool
    closed: bool
    _lock: threading.Lock
    _flights: dict
    _dead: set

    def __init__(self) -> None:
        self._placed: dict[int, Any] = {}  # engine -> a view that sends tasks to it only
        self._store_checks: dict[tuple, str | None] = {}

    def _view_for(self, engine: Any, queue: bool = False) -> Any:
        """The view that sends a task to ``engine``, or the shared one.

        To ``engine`` if it runs nothing and nothing waits for it; with
        ``queue``, also if one task is ahead there (a big input: waiting behind
        one job beats reading it elsewhere, as Dask weighs a transfer).
        """
        if engine is None or engine not in self.client.ids or engine in self._dead:
            return self.view
        with self._lock:
            ahead = sum(
                1 for f in self._flights.values()
                if (f.engine == engine and not f.ended) or (f.placed == engine and not (f.started or f.ended))
            )
        if ahead > (1 if queue else 0):
            return self.view
        view = self._placed.get(engine)
        if view is None:
            view = self._placed[engine] = self.client.load_balanced_view(targets=[engine])
        return view

    def store_problem(self, root: str) -> str | None:
        """Why the engines cannot share the store at ``root`` (None: they can); asked once per set of engines."""
        from .storecheck import check_store

        key = (root, frozenset(self.client.ids))
        if key not in self._store_checks:
            self._store_checks[key] = check_store(self.client, root)
        return self._store_checks[key]

    def release(self, engine: Any, paths: list[str]) -> None:
        """Tell ``engine`` it may drop the results at ``paths`` from its memory (they stay in the store)."""
        if engine not in self.client.ids or self.lost or self.closed:
            return
        try:
            ar = self.client[engine].apply_async(release, paths)
            ar.add_done_callback(lambda _f: self._forget_reply(ar))
        except Exception as exc:  # gone: its memory went with it
            log.debug("overseer_nb: could not release results on engine %s: %s", engine, exc)

    def release_run(self, run_id: str) -> None:
        """Tell every engine it may drop the results of ``run_id`` from its memory."""
        if not self.client.ids or self.lost or self.closed:
            return
        try:
            ar = self.client[:].apply_async(release_run, run_id)
            ar.add_done_callback(lambda _f: self._forget_reply(ar))
        except Exception as exc:
            log.debug("overseer_nb: could not release the results of run %s: %s", run_id, exc)

    def _forget_reply(self, ar: Any) -> None:
        for msg_id in ar.msg_ids:
            self.client.results.pop(msg_id, None)
            self.client.metadata.pop(msg_id, None)
