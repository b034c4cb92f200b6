"""What the state machine returns: transitions, instructions, and the Step that carries them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Transition", "Submit", "AfterResult", "Interrupt", "Withdraw", "Step", "SHARE_STORE", "SHARE_MEMORY"]

SHARE_STORE = "store"
SHARE_MEMORY = "memory"


@dataclass(frozen=True)
class Transition:
    """A job's stored status changed."""

    job: str
    old: str
    new: str
    reason: str
    attempt: int
    at: float
    message: str = ""


@dataclass(frozen=True)
class AfterResult:
    """An input not made yet: the result attempt ``attempt`` of ``job`` will leave in the store."""

    job: str
    attempt: int


@dataclass(frozen=True)
class Submit:
    """Send attempt ``attempt`` of ``job`` to the cluster with its parents' results.

    ``after``: the attempts of parents still out, (job, attempt) each; the job
    is sent ahead of them (the cluster starts it once they end) and those
    parents' inputs are :class:`AfterResult`\\ s.
    """

    job: str
    attempt: int
    inputs: dict[str, Any]  # parent -> its ResultData (records.ResultData), or an AfterResult
    after: tuple[tuple[str, int], ...] = ()
    # a child may be sent ahead of it: SHARE_STORE, its result is in the store before its report leaves the
    # engine; SHARE_MEMORY, its one such child runs on its engine (``follow``) and reads it from memory
    shared: str = ""
    follow: tuple[tuple[str, int], ...] = ()  # of ``after``, the attempt whose engine it must run on


@dataclass(frozen=True)
class Interrupt:
    """Interrupt a running attempt; kill its engine if it still runs ``kill_after`` s later."""

    job: str
    attempt: int
    engine: Any
    kill_after: float


@dataclass(frozen=True)
class Withdraw:
    """Drop a submitted attempt that no engine has taken yet."""

    job: str
    attempt: int


@dataclass
class Step:
    """What one event did: transitions, display changes, instructions."""

    transitions: list[Transition] = field(default_factory=list)
    display: dict[str, str] = field(default_factory=dict)
    instructions: list[Submit | Interrupt | Withdraw] = field(default_factory=list)
    selected: frozenset[str] = frozenset()
    expanded: dict[str, int] = field(default_factory=dict)  # mapped type -> its items, now known
    removed: list[str] = field(default_factory=list)  # items forgotten (their type maps anew)

    def __bool__(self) -> bool:
        return bool(self.transitions or self.display or self.instructions or self.expanded or self.removed)

    def absorb(self, later: Step) -> None:
        """Append ``later`` to this step (its display states win)."""
        self.transitions.extend(later.transitions)
        self.display.update(later.display)
        self.instructions.extend(later.instructions)
        self.selected = self.selected | later.selected
        # items forgotten after they were made known in this batch: nothing to record of them
        gone = {key.rsplit("[", 1)[0] for key in later.removed}
        self.expanded = {t: n for t, n in self.expanded.items() if t not in gone}
        self.removed.extend(later.removed)  # recorded first, then what became known
        self.expanded.update(later.expanded)
