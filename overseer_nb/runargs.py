"""A run's identity and arguments: its id, and its args pickled once for every engine."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .errors import ArgsError

__all__ = ["new_run_id", "new_session", "pickle_args"]


def new_run_id() -> str:
    """A run id that sorts by time and is unique: ``20261127-191000-3fa2c1``."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def new_session() -> str:
    """A token of its own for a kernel that resumes a run (result files and stale tasks are told apart by it)."""
    return secrets.token_hex(4)


def pickle_args(args: Any) -> bytes:
    """``args`` pickled, or :class:`ArgsError` naming what cannot be sent."""
    if not isinstance(args, Mapping):
        raise ArgsError(
            f"args must be a dict of the run's arguments, got {type(args).__name__} {args!r:.60}; "
            'e.g. args={"org": 123}'
        )
    import cloudpickle

    try:
        return cloudpickle.dumps(dict(args))
    except Exception as exc:
        bad = []
        for key, value in args.items():
            try:
                cloudpickle.dumps(value)
            except Exception:
                bad.append(key)
        which = f" (the value of {', '.join(map(repr, bad))})" if bad else ""
        raise ArgsError(
            f"args cannot be sent to the engines{which}: {exc}. Pass plain data "
            "(numbers, strings, lists, dicts), or a path to a file the jobs open."
        ) from exc
