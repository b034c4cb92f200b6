"""Run options: one place for their names, defaults and checks."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import OptionError, UnknownOptionError

__all__ = ["RunOptions", "JOB_OPTION_NAMES", "backoff_delay"]

# Options a job type may override through its handler.
JOB_OPTION_NAMES = ("retries", "retry_delay", "timeout", "max_faults", "max_parallel", "cache")


@dataclass(frozen=True)
class RunOptions:
    """Every knob of a run, with its default.

    retries: automatic retries after an ordinary exception (0: none).
    retry_delay: seconds before such an automatic retry.
    timeout: seconds a job may run before it is interrupted and failed (None: no limit).
    max_faults: ``fault()`` calls after which a job fails.
    fault_backoff: first backoff after a fault, in seconds; doubles each fault.
    fault_backoff_max: cap of the fault backoff, in seconds.
    max_engine_losses: engines a job may lose before it fails.
    kill_grace: seconds between interrupting a job and killing its engine.
    max_result_bytes: largest result (pickled size) a job may return; None: no cap.
    max_output_chars: characters of each attempt's stdout and of its stderr kept
    where it runs (the first and last halves, with a marker between).
    max_parallel: most jobs of one type (mapped or not) out at once; None: no cap.
    cache: reuse an earlier run's result of a job whose fingerprint is the same
    (SPEC §13); a job type's ``cache=False`` always runs (side effects).
    eager: on a cluster whose engines share the result store, send a job as soon
    as its parents are sent, ``after`` them, so the cluster starts it the moment
    they end (SPEC §14); False: the kernel sends each job once its parents finished.
    """

    retries: int = 0
    retry_delay: float = 1.0
    timeout: float | None = None
    max_faults: int = 5
    fault_backoff: float = 1.0
    fault_backoff_max: float = 60.0
    max_engine_losses: int = 3
    kill_grace: float = 5.0
    max_result_bytes: int | None = None
    max_output_chars: int = 1_000_000
    max_parallel: int | None = None
    cache: bool = False
    eager: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            _check(f.name, getattr(self, f.name))

    def with_changes(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` applied (unknown names raise ``TypeError``)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise UnknownOptionError(
                f"unknown run option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                f"valid options: {', '.join(sorted(known))}"
            )
        return replace(self, **changes)

    def for_job(self, overrides: dict[str, Any]) -> RunOptions:
        """These options with a job type's own ``overrides`` applied."""
        return self.with_changes(**overrides) if overrides else self


_INTS = {"retries": 0, "max_faults": 1, "max_engine_losses": 1, "max_result_bytes": 1, "max_output_chars": 2,
         "max_parallel": 1}
_MAY_BE_NONE = ("timeout", "max_result_bytes", "max_parallel")


def _check(name: str, value: Any) -> None:
    if name in _INTS and not (name in _MAY_BE_NONE and value is None):
        if isinstance(value, bool) or not isinstance(value, int) or value < _INTS[name]:
            raise OptionError(f"{name} must be a whole number >= {_INTS[name]}, got {value!r}")
        return
    if name in _MAY_BE_NONE and value is None:
        return
    if name in ("cache", "eager"):
        if not isinstance(value, bool):
            raise OptionError(f"{name} must be True or False, got {value!r}")
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0 or (name == "timeout" and value == 0):
        bound = "> 0 (or None for no limit)" if name == "timeout" else ">= 0"
        raise OptionError(f"{name} must be a number of seconds {bound}, got {value!r}")


def backoff_delay(faults: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after the ``faults``-th fault: exponential, capped, with jitter.

    "Equal jitter": half the exponential delay is kept, the other half is drawn,
    so retries of many jobs spread out but never come back at once.
    """
    delay = min(cap, base * 2 ** max(0, faults - 1))
    return delay / 2 + rng.uniform(0, delay / 2)
