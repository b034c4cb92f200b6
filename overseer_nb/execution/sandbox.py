"""Around each attempt on an engine: what is put back after it, and which interrupts it takes.

The rule for state between jobs on one engine (:class:`Sandbox`): after each
attempt the engine's **working directory, environment variables
(``os.environ``), signal handlers, ``sys.stdout``/``sys.stderr`` and file
descriptors 1/2** are as they were before it. Everything else a job changes
stays for the jobs that run after it on that engine: module globals and
imported modules, ``sys.path``, caches, threads and processes it started, files
it left open, the umask, resource limits. Jobs on threads of a kernel
(``ThreadExecutor``) share their process, so nothing is put back there.

An interrupt meant for an attempt can arrive after it ended, when the engine
runs the next one: a SIGINT carries no word of whom it is for. So while an
attempt runs, SIGINT raises ``KeyboardInterrupt`` only if the kernel first put
this task's msg_id in the engine kernel's ``aborted`` set (an
``abort_request`` on the control channel, answered before the kernel sends the
signal); any other SIGINT is ignored. Standard library only: this runs on the engines.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import threading
import time
from typing import Any, NamedTuple

__all__ = ["EngineTask", "current_task", "Sandbox"]


class EngineTask(NamedTuple):
    """The ipyparallel task this engine runs now: its kernel's ``aborted`` set and its msg_id."""

    aborted: Any  # the engine kernel's set of msg_ids to abort (None: not on an engine)
    msg_id: str | None

    @property
    def withdrawn(self) -> bool:
        """True if the kernel aborted this task (withdrawn, or asked to interrupt it)."""
        return self.aborted is not None and self.msg_id in self.aborted


def current_task() -> EngineTask:
    """The task this ipyparallel engine runs now; ``EngineTask(None, None)`` elsewhere."""
    try:
        from IPython import get_ipython

        kernel = get_ipython().kernel
        msg_id = kernel.get_parent("shell")["header"]["msg_id"]
        return EngineTask(kernel.aborted, msg_id)
    except Exception:
        return EngineTask(None, None)


try:  # the C module: getsignal without turning every handler into an enum member
    import _signal as _raw
except ImportError:  # pragma: no cover - another Python
    _raw = signal  # type: ignore[assignment]

# Signals a job may have set a handler for (not SIGKILL/SIGSTOP, which take none).
_SIGNALS = sorted(int(s) for s in signal.valid_signals() if s not in (signal.SIGKILL, getattr(signal, "SIGSTOP", None)))


# the environment as it is stored (CPython keeps it in ``_data``): copied twice per attempt in C, not
# variable by variable; changes go back through ``_ENVIRON`` (os.environ or os.environb), which also calls putenv
_ENVIRON: Any = os.environb if os.supports_bytes_environ else os.environ
_RAW_ENV: Any = getattr(_ENVIRON, "_data", None)


def _environment() -> dict:
    return dict(_ENVIRON if _RAW_ENV is None else _RAW_ENV)


def _handlers() -> dict[int, Any]:
    saved = {}
    for sig in _SIGNALS:
        try:
            handler = _raw.getsignal(sig)
        except (ValueError, OSError):
            continue
        if handler is not None:  # None: set outside Python, cannot be put back
            saved[sig] = handler
    return saved


class Sandbox:
    """Puts back what an attempt changed (see the module docstring) and gates SIGINT to ``task``.

    ``crash_file``: a file descriptor ``faulthandler`` writes a native crash's
    Python stack to while the attempt runs (the attempt's stderr capture).
    Only in the main thread (signals need it); elsewhere it only puts back state.
    """

    def __init__(self, task: EngineTask, crash_file: int | None = None):
        self.task, self.crash_file = task, crash_file
        self._main = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> Sandbox:
        try:
            self.cwd: str | None = os.getcwd()
        except OSError:
            self.cwd = None
        self.environ = _environment()
        self.streams = (sys.stdout, sys.stderr)
        self.signals = _handlers() if self._main else {}
        self.faulthandler = faulthandler.is_enabled()
        if self._main:
            signal.signal(signal.SIGINT, self._on_sigint)
        if self.crash_file is not None:
            faulthandler.enable(file=self.crash_file, all_threads=False)
        return self

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.task.aborted is None:
            raise KeyboardInterrupt  # not on an engine: no word of whom it is for
        for _ in range(20):  # the request is answered before the signal; give a busy control thread 0.1 s
            if self.task.withdrawn:
                raise KeyboardInterrupt
            time.sleep(0.005)
        # a late interrupt meant for an attempt that already ended: not this one's

    def __exit__(self, *exc: Any) -> None:
        if self.crash_file is not None:
            faulthandler.disable()
            if self.faulthandler:
                with contextlib.suppress(Exception):
                    faulthandler.enable(file=sys.__stderr__)
        for sig, handler in self.signals.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                if _raw.getsignal(sig) is not handler:
                    signal.signal(sig, handler)
        sys.stdout, sys.stderr = self.streams
        if self.cwd is not None:
            with contextlib.suppress(OSError):
                os.chdir(self.cwd)
        now = _environment()
        if now != self.environ:
            for key in now.keys() - self.environ.keys():
                del _ENVIRON[key]
            for key, value in self.environ.items():
                if now.get(key) != value:
                    _ENVIRON[key] = value
        if self.task.aborted is not None:
            self.task.aborted.discard(self.task.msg_id)  # an interrupt request for it is spent
