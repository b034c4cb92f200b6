"""Output capture for attempts: each job's stdout and stderr, bounded.

Two levels. :class:`ThreadRouter` stands in for ``sys.stdout``/``sys.stderr``
and sends what the thread running a job writes to that job's sink: enough for
jobs on threads of a kernel (``ThreadExecutor``), which must not touch the
notebook's file descriptors. On an engine, :class:`FdCapture` also points file
descriptors 1 and 2 at two files for the attempt (as ipykernel captures a
cell's), so what subprocesses and C code write is kept too, in order with what
Python prints; a native crash's stack (``faulthandler``) lands in the same
stderr file, which the kernel reads when it learns the engine died.

Imported on the engines with :mod:`.engine`, so it imports only the standard
library and :mod:`overseer_nb.text`.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

from ..text import clip_middle, marker

__all__ = ["BoundedText", "ThreadRouter", "thread_router", "FdCapture", "FileSink", "collapse_cr", "read_capture"]


class _Echoing(io.TextIOBase):
    """A text sink that also passes what it is given on to ``echo`` (the engine's own stream).

    ipyparallel forwards that stream live, so a job whose engine dies keeps what
    it printed. A broken echo is dropped, never allowed to fail the job.
    """

    echo: Any = None
    _unflushed = False

    def writable(self) -> bool:
        return True

    def _echo(self, text: str) -> None:
        if self.echo is not None:
            self._unflushed = True
            try:
                self.echo.write(text)
            except Exception:  # a broken echo must not fail the job
                self.echo = None

    def flush(self) -> None:
        # an engine's stream flush waits for its I/O thread: skip it when there is nothing new
        if self.echo is not None and self._unflushed:
            self._unflushed = False
            with contextlib.suppress(Exception):
                self.echo.flush()


class BoundedText(_Echoing):
    """A text sink that keeps the first and last ``limit // 2`` characters.

    Whatever is written is also passed on to ``echo`` (the engine's own stream,
    which ipyparallel forwards live), so a job that dies keeps what it printed.
    What is cut out shows as :func:`overseer_nb.text.marker`.
    """

    def __init__(self, limit: int, echo: Any = None):
        self.limit, self.echo = limit, echo
        self._head: list[str] = []
        self._head_len = 0
        self._tail = io.StringIO()
        self.dropped = 0

    def write(self, text: str) -> int:
        self._echo(text)
        half = self.limit // 2
        if self._head_len < half:
            take = text[: half - self._head_len]
            self._head.append(take)
            self._head_len += len(take)
            text = text[len(take):]
        if text:
            self._tail.write(text)
            if self._tail.tell() > 2 * half:
                kept = self._tail.getvalue()[-half:]
                self.dropped += self._tail.tell() - len(kept)
                self._tail = io.StringIO()
                self._tail.write(kept)
        return len(text)

    def getvalue(self) -> str:
        """What was kept: the head, the marker if anything was cut, the tail."""
        tail = self._tail.getvalue()
        half = self.limit // 2
        dropped = self.dropped + max(0, len(tail) - half)
        tail = tail[-half:] if len(tail) > half else tail
        head = "".join(self._head)
        if dropped:
            return head + marker(dropped) + tail
        return head + tail


class ThreadRouter(io.TextIOBase):
    """Stands in for ``sys.stdout``/``sys.stderr``: a thread running a job writes to its own sink.

    Other threads write to the stream that was there before (``fallback``), so
    jobs run on threads of a kernel (``ThreadExecutor``) capture only their own
    output and leave the notebook's cells alone.
    """

    def __init__(self, fallback: Any):
        self.fallback = fallback
        self._local = threading.local()

    def _target(self) -> Any:
        return getattr(self._local, "sink", None) or self.fallback

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, ... of the real stream
        return getattr(self.fallback, name)

    @contextlib.contextmanager
    def capture(self, sink: Any) -> Iterator[Any]:
        """Send what this thread writes to ``sink`` inside the ``with`` block."""
        self._local.sink = sink
        try:
            yield sink
        finally:
            self._local.sink = None


_router_lock = threading.Lock()


def thread_router(name: str) -> ThreadRouter:
    """The router standing in for ``sys.<name>`` (``stdout``/``stderr``), installed on first use."""
    with _router_lock:
        stream = getattr(sys, name)
        if not isinstance(stream, ThreadRouter):
            stream = ThreadRouter(stream)
            setattr(sys, name, stream)
        return stream


_REDRAWN = re.compile(r"[^\n]*\r(?=[^\n])")


def collapse_cr(text: str) -> str:
    """``text`` with each line a progress bar redrew (``\\r``) kept in its last state."""
    if "\r" not in text:
        return text
    text = _REDRAWN.sub("", text.replace("\r\n", "\n"))
    return text.replace("\r", "")


def read_capture(path: str, limit: int) -> str:
    """The text of capture file ``path``: its first and last ``limit // 2`` characters, ``\\r`` collapsed.

    Reads at most a few times ``limit`` bytes however large the file is; ``""``
    if it cannot be read.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            budget = 4 * max(limit, 1)  # a character is at most 4 bytes of UTF-8
            if size <= 2 * budget:
                return clip_middle(collapse_cr(f.read().decode("utf-8", "replace")), limit)
            half = limit // 2
            head = collapse_cr(f.read(budget).decode("utf-8", "ignore"))[:half]
            f.seek(size - budget)
            tail = collapse_cr(f.read().decode("utf-8", "ignore"))
            tail = tail[len(tail) - half:] if half else ""
    except OSError:
        return ""
    return head + marker(max(0, size - len(head.encode()) - len(tail.encode()))) + tail


_libc: list[Any] = []


def _flush_c_streams() -> None:
    """Flush C's stdio buffers, so what C code printed lands before the descriptors move."""
    try:
        if not _libc:
            import ctypes

            _libc.append(ctypes.CDLL(None))
        _libc[0].fflush(None)
    except Exception:  # no libc to reach (Windows): nothing buffered there to lose
        pass


class FileSink(_Echoing):
    """A job thread's ``sys.stdout``/``sys.stderr`` during fd capture: writes go to the capture file.

    So Python's output and the output of C code and subprocesses (written to the
    same file through fd 1/2) keep their order. Also passed on to ``echo`` (the
    engine's stream, which ipyparallel forwards live), so a job whose engine dies
    on another host keeps what Python printed.
    """

    def __init__(self, fd: int, echo: Any = None):
        self.fd, self.echo = fd, echo

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "backslashreplace")
        while data:
            data = data[os.write(self.fd, data):]
        self._echo(text)
        return len(text)


class FdCapture:
    """Points file descriptors 1 and 2 at the files ``stdout`` and ``stderr`` in ``directory``.

    Use as a context manager around one attempt; :meth:`text` reads what was
    written, bounded. The files stay until :meth:`remove`, so when the engine
    dies mid-attempt they hold its last output (and a crash's stack).
    """

    NAMES = {1: "stdout", 2: "stderr"}

    def __init__(self, directory: str):
        self.directory = directory
        self.paths = {fd: os.path.join(directory, name) for fd, name in self.NAMES.items()}
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self.files = {fd: os.open(path, flags, 0o600) for fd, path in self.paths.items()}
        self._saved: dict[int, int | None] = {}

    def __enter__(self) -> FdCapture:
        _flush_c_streams()
        for fd, target in self.files.items():
            try:
                self._saved[fd] = os.dup(fd)
            except OSError:  # not open (a daemonized engine): it is ours for the attempt
                self._saved[fd] = None
            os.dup2(target, fd)
        return self

    def __exit__(self, *exc: Any) -> None:
        _flush_c_streams()
        for fd, saved in self._saved.items():
            if saved is None:
                os.close(fd)
            else:
                os.dup2(saved, fd)
                os.close(saved)
        self._saved.clear()

    def text(self, fd: int, limit: int) -> str:
        """What was written to ``fd`` (1 or 2) during the attempt, bounded to ``limit`` characters."""
        try:
            if os.fstat(self.files[fd]).st_size == 0:
                return ""  # most jobs print nothing: no file to open and read
        except OSError:
            pass
        return read_capture(self.paths[fd], limit)

    def remove(self) -> None:
        """Close the files; delete them (and ``directory`` if it is empty then) on a thread of their own.

        The attempt's report goes back meanwhile: a child may start at once. A
        folder of an attempt that ended is never read again, so deleting it late
        changes nothing.
        """
        for fd in self.paths:
            with contextlib.suppress(OSError):
                os.close(self.files[fd])
        _removals.put((list(self.paths.values()), self.directory))
        with _removals_lock:
            if not _remover:
                _remover.append(threading.Thread(target=_remove_forever, name="overseer-scratch-remove",
                                                 daemon=True))
                _remover[0].start()


_removals: queue.SimpleQueue = queue.SimpleQueue()
_removals_lock = threading.Lock()
_remover: list[threading.Thread] = []


def _remove_forever() -> None:
    while True:
        paths, directory = _removals.get()
        for path in paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(directory)
