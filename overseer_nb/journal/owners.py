"""Who owns a run: this process, a live process on this machine, or one on another machine.

The ``runs`` row names an owner (host, pid) and its last heartbeat; these
functions decide whether that owner is alive and whether this process may
take the run over, and word the refusal.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from ..errors import RunOwnerError
from ..execution import pid_alive

__all__ = [
    "HEARTBEAT_EVERY", "STALE_AFTER", "this_process", "owner_alive", "is_this_process", "may_take",
    "owner_error", "changed_error",
]

HEARTBEAT_EVERY = 30.0  # seconds between heartbeats of a run in progress
STALE_AFTER = 120.0  # a run of another machine with no heartbeat for this long may be taken over


def this_process() -> tuple[str, int]:
    """(host, pid) of this process, as the ``runs`` row names an owner."""
    return socket.gethostname(), os.getpid()


def owner_alive(row: Mapping[str, Any]) -> bool:
    """True if another process may still be running the run: the owner (``host``, ``pid``) of ``row``.

    On this machine: its pid is alive. On another machine, where its pid
    cannot be checked: its ``heartbeat`` is less than :data:`STALE_AFTER`
    seconds old. False for this process itself.
    """
    pid, host = row.get("pid"), row.get("host")
    if not pid:
        return False
    if host != socket.gethostname():
        heartbeat = row.get("heartbeat") or row.get("updated") or 0.0
        return time.time() - heartbeat < STALE_AFTER
    if pid == os.getpid():
        return False
    return pid_alive(pid)  # a killed child not yet reaped (a zombie) counts as gone


def is_this_process(owner: Mapping[str, Any]) -> bool:
    """True if ``owner`` (a ``runs`` row's host and pid) is this process."""
    return (owner.get("host"), owner.get("pid")) == this_process()


def may_take(owner: Mapping[str, Any]) -> bool:
    """True if this process may take over a run whose ``runs`` row names ``owner``.

    It may if the owner is this process, has nothing in flight (``active`` 0),
    or is gone (:func:`owner_alive`).
    """
    return is_this_process(owner) or not owner.get("active") or not owner_alive(owner)


def _where(owner: Mapping[str, Any]) -> str:
    host, pid = owner.get("host") or "?", owner.get("pid")
    if host == socket.gethostname():
        return f"process {pid} on this machine ({host})"
    return f"process {pid} on {host}"


def owner_error(run_id: str, owner: Mapping[str, Any], *, doing: str = "resume") -> RunOwnerError:
    """The error that refuses this process a run ``owner`` keeps, naming its host and process.

    doing: ``"resume"`` (a claim refused) or ``"record"`` (a step refused: the
    run was taken over).
    """
    host, pid = owner.get("host") or "?", owner.get("pid")
    if doing == "record":
        message = f"run {run_id} was taken over by {_where(owner)}; this process records and submits nothing more of it"
    elif host == socket.gethostname():
        message = f"run {run_id} is being run by {_where(owner)}; resume it there, or stop that process first"
    else:
        heartbeat = owner.get("heartbeat") or owner.get("updated") or 0.0
        message = (
            f"run {run_id} is being run by {_where(owner)}; resume it there, or stop it there first (its last "
            f"heartbeat was {max(0.0, time.time() - heartbeat):.0f} s ago; a run whose owner on another machine "
            f"is silent for {STALE_AFTER:.0f} s may be taken over)"
        )
    return RunOwnerError(message, run_id=run_id, host=host, pid=pid)


def changed_error(run_id: str, owner: Mapping[str, Any], jobs: list[str]) -> RunOwnerError:
    """The error that refuses to resume a copy of a run that another process carried on since."""
    which = f" (jobs {', '.join(jobs[:5])}{', ...' if len(jobs) > 5 else ''})" if jobs else ""
    return RunOwnerError(
        f"run {run_id} was carried on by {_where(owner)} since this copy of it was loaded{which}; "
        f"load it again (ov.load_run({run_id!r})) and resume that",
        run_id=run_id, host=owner.get("host") or "?", pid=owner.get("pid"),
    )
