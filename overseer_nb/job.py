"""The ``Job`` a handler receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Job"]


@dataclass(frozen=True)
class Job:
    """One concrete unit of work: one job type within one run.

    ``inputs`` maps each parent job type to that parent's result; ``args`` are
    the run's arguments; ``attempt`` is 1 on the first try.
    """

    id: str
    type: str
    run_id: str
    args: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    inputs: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        """``job["args"]`` reads like Overseer's job map."""
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None
