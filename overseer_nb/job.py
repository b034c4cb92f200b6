"""The ``Job`` a handler receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Job"]


@dataclass(frozen=True)
class Job:
    """One concrete unit of work: one job type within one run.

    ``inputs`` maps each parent job type to that parent's result (for an item
    of a mapped type, the parent it maps over gives item ``index`` of its
    result; a mapped parent taken whole gives the list of its items' results);
    ``args`` are the run's arguments; ``attempt`` is 1 on the first try;
    ``index`` is which item of a mapped type this job is (None otherwise).
    """

    id: str
    type: str
    run_id: str
    args: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    inputs: dict[str, Any] = field(default_factory=dict)
    index: int | None = None

    def __getitem__(self, key: str) -> Any:
        """``job["args"]`` reads like Overseer's job map."""
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None
