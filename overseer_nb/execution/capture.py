"""Output capture for attempts: each job's stdout and stderr, bounded, on its own thread.

Imported on the engines with :mod:`.engine`, so it imports only the standard
library and :mod:`overseer_nb.text`.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Iterator
from typing import Any

from ..text import marker

__all__ = ["BoundedText", "ThreadRouter", "thread_router"]


class BoundedText(io.TextIOBase):
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
        self._unflushed = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._unflushed = True
        if self.echo is not None:
            try:
                self.echo.write(text)
            except Exception:  # a broken echo must not fail the job
                self.echo = None
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

    def flush(self) -> None:
        # an engine's stream flush waits for its I/O thread: skip it when there is nothing new
        if self.echo is not None and self._unflushed:
            self._unflushed = False
            with contextlib.suppress(Exception):
                self.echo.flush()

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
