"""Before a run on a cluster: check on one engine that every handler can be loaded there."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..errors import HandlerError
from ..graph import JobGraph
from ..handlers import current_lifecycle
from .connection import queue_status
from .shipping import Shipper

__all__ = ["check_handlers_on_engine"]

log = logging.getLogger("overseer_nb")


def check_handlers_on_engine(
    client: Any, graph: JobGraph, handlers: Mapping[str, Any], shipper: Shipper, timeout: float = 5.0
) -> None:
    """Raise :class:`HandlerError` naming each job whose handler an engine cannot load or import.

    Pickles through ``shipper``, so the run that follows ships the same pickles.
    Asks the least busy engine; with no engine, or no answer within
    ``timeout`` seconds (all engines busy), the check is skipped.
    """
    from .engine import preflight

    if not client.ids:
        return
    blobs = {}
    for job in graph:
        life = current_lifecycle(job, handlers[job])
        blobs[job] = shipper.pickle(job, (life.pre_process, life.process, life.post_process))
    try:
        load = queue_status(client, timeout)
        engine = min(client.ids, key=lambda e: load.get(e, {}).get("queue", 0) + load.get(e, {}).get("tasks", 0))
        problems = client[engine].apply_async(preflight, blobs).get(timeout)
    except Exception as exc:  # busy or gone: the run itself will say what fails
        log.debug("overseer_nb: pre-flight check skipped: %s", exc)
        return
    if problems:
        lines = "; ".join(f"{job!r}: {why}" for job, why in problems.items())
        raise HandlerError(
            f"handlers cannot run on the engines - {lines}. Install the missing modules where the "
            "engines run (e.g. %px pip install NAME, or in the engines' environment); nothing was run."
        )

