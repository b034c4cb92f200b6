"""Handlers as the engines get them: their stages, pickled once per distinct set of functions."""

from __future__ import annotations

from typing import Any

from ..errors import HandlerError

__all__ = ["Shipper"]


class Shipper:
    """Pickles the stages of handlers for the engines and keeps the pickles.

    The same stage functions give the same pickle until :meth:`forget` (a retry
    ships a global fixed in a cell anew). Each
    :class:`~overseer_nb.execution.ipp.IPyParallelExecutor` owns one, and the
    pre-flight check before its run pickles through it: each handler is pickled
    once per run.
    """

    def __init__(self) -> None:
        self._pickles: dict[tuple[int, ...], tuple[tuple, bytes]] = {}

    def pickle(self, job: str, stages: tuple[Any, Any, Any]) -> bytes:
        """``stages`` (``(pre_process, process, post_process)``) of ``job``'s handler, pickled.

        Raises :class:`HandlerError` naming ``job`` if they cannot be pickled.
        """
        key = tuple(map(id, stages))
        known = self._pickles.get(key)
        if known is not None and known[0] == stages:
            return known[1]
        import cloudpickle

        try:
            blob = cloudpickle.dumps(stages)
        except Exception as exc:
            raise HandlerError(
                f"the handler of {job!r} cannot be sent to the engines: {exc}. Handlers and the "
                "globals they use must be picklable (open files, locks and connections inside "
                "the handler instead)."
            ) from exc
        self._pickles[key] = (stages, blob)
        return blob

    def forget(self) -> None:
        """Pickle every handler again from now on."""
        self._pickles.clear()
