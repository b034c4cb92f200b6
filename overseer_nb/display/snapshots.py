"""A frozen picture of a run: ``run.snapshot()``.

The live widget follows a run, and so does the static picture saved beside it
(a retry turns a failed node green there too). A :class:`Snapshot` is the
run's coloured SVG at one moment, drawn once when it is taken: it never changes
afterwards, so a notebook can keep the failure a later retry fixes. It renders
as ``image/svg+xml`` (GitHub and nbviewer show it) and carries
``overseer-snapshot-<run id>``, not the static picture's marker, so a live view
of the run does not hide it.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import DotNotFoundError
from .saved import static_picture
from .tally import item_counts

__all__ = ["Snapshot", "snapshot"]


class Snapshot:
    """A run's picture at one moment; made by :func:`snapshot` (``run.snapshot()``), never updated.

    run_id: the run's id; taken: when (seconds since the epoch); states: job
    type -> display state then; svg: the picture (None without Graphviz's
    ``dot``); text: its summary line.
    """

    def __init__(self, run_id: str, taken: float, states: dict[str, str], svg: str | None, text: str):
        self.run_id = run_id
        self.taken = taken
        self.states = states
        self.svg = svg
        self.text = text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        bundle = {"text/plain": self.text}
        if self.svg is not None:
            bundle["image/svg+xml"] = self.svg
        return bundle

    def __repr__(self) -> str:
        return self.text


def snapshot(run: Any) -> Snapshot:
    """The picture of ``run`` as it is now, drawn once (see :class:`Snapshot`)."""
    taken = time.time()
    states = dict(run.display_states)
    items = item_counts(run)
    clock = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(taken))
    try:
        svg: str | None = static_picture(run, states, items, kind="snapshot", heading=f"Run {run.run_id} at {clock}")
    except DotNotFoundError:
        svg = None
    return Snapshot(run.run_id, taken, states, svg, f"snapshot at {clock} of {run.summary()}")
