"""Engine processes: who an engine is (pid, host, start time, command line), and killing one safely.

A pid learned when an engine registered may belong to another process by the
time the kernel kills it (the engine died and the pid was reused), and a host
name may be shared by containers whose pids mean other processes. So a process
is killed by pid only if its start time and command line, read now on this
host, are still those the engine reported about itself; otherwise the
controller is asked (the engine's nanny signals its own child), or nothing is
done. :func:`engine_process` runs on the engines: standard library only
(psutil where /proc is missing).
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any, NamedTuple

__all__ = ["EngineProcess", "engine_process", "process_start", "same_process", "kill_engine", "pid_alive"]


class EngineProcess(NamedTuple):
    """An engine's process as it reported itself: ``started`` and ``cmdline`` tell a reused pid apart."""

    pid: int
    host: str
    started: float | None
    cmdline: tuple[str, ...]


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` of this host runs; a killed one its parent has not reaped yet (a zombie) is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        pass
    try:  # no /proc to ask
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:
        return True  # it answered the signal


def process_start(pid: int) -> float | None:
    """When process ``pid`` started, in a unit fixed per host (None: unknown or no such process).

    Linux: field 22 of ``/proc/<pid>/stat`` (clock ticks since boot, the same
    value in every pid namespace); elsewhere psutil's create time.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return float(fields[19])
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return None  # a /proc without this pid: it is gone
    except (OSError, IndexError, ValueError):
        return None
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:
        return None


def _cmdline(pid: int) -> tuple[str, ...]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return tuple(part.decode("utf-8", "replace") for part in f.read().split(b"\0") if part)
    except OSError:
        pass
    try:
        import psutil

        return tuple(psutil.Process(pid).cmdline())
    except Exception:
        return ()


def engine_process() -> EngineProcess:
    """Run on an engine: its pid, host name, start time and command line."""
    pid = os.getpid()
    return EngineProcess(pid, socket.gethostname(), process_start(pid), _cmdline(pid))


def same_process(identity: EngineProcess | None) -> bool:
    """True if ``identity``'s pid on this host is still the process that reported it."""
    if identity is None or identity.host != socket.gethostname() or identity.started is None:
        return False
    if process_start(identity.pid) != identity.started:
        return False
    return not identity.cmdline or _cmdline(identity.pid) == tuple(identity.cmdline)


def kill_engine(client: Any, engine: int, identity: EngineProcess | None, *, via_controller: bool) -> bool:
    """SIGKILL ``engine``: by pid if :func:`same_process` says ``identity`` is still it.

    Otherwise, if ``via_controller``, ask the controller to send the signal.
    Returns whether a signal was sent; raises what ``os.kill`` or
    ``Client.send_signal`` raise.
    """
    if identity is not None and same_process(identity):
        os.kill(identity.pid, signal.SIGKILL)
        return True
    if via_controller:
        client.send_signal(signal.SIGKILL, targets=[engine], block=False)
        return True
    return False
