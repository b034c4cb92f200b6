"""What runs on an engine: one attempt of one job.

Imported on the engines by reference, so everything it needs is here or in
the small modules it imports (``job``, ``signals``). It never raises: every
outcome, including a handler that cannot be loaded, comes back as a dict.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import sys
import threading
import time
import traceback
from typing import Any

from ..job import Job
from ..signals import Abort, Fault

__all__ = ["run_attempt", "BoundedText"]

_HERE = __file__


class BoundedText(io.TextIOBase):
    """A text sink that keeps the first and last ``limit // 2`` characters.

    Whatever is written is also passed on to ``echo`` (the engine's own stream,
    which ipyparallel forwards live), so a job that dies keeps what it printed.
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
        tail = self._tail.getvalue()
        half = self.limit // 2
        dropped = self.dropped + max(0, len(tail) - half)
        tail = tail[-half:] if len(tail) > half else tail
        head = "".join(self._head)
        if dropped:
            return f"{head}\n[... {dropped} characters not kept ...]\n{tail}"
        return head + tail


class _ThreadRouter(io.TextIOBase):
    """Stands in for ``sys.stdout``/``sys.stderr``: a thread running a job writes to its own sink.

    Other threads write to the stream that was there before, so jobs run on
    threads of a kernel (``ThreadExecutor``) capture only their own output and
    leave the notebook's cells alone.
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
    def capture(self, sink: Any):
        self._local.sink = sink
        try:
            yield sink
        finally:
            self._local.sink = None


_router_lock = threading.Lock()


def _router(name: str) -> _ThreadRouter:
    """The router standing in for ``sys.<name>``, installed on first use."""
    with _router_lock:
        stream = getattr(sys, name)
        if not isinstance(stream, _ThreadRouter):
            stream = _ThreadRouter(stream)
            setattr(sys, name, stream)
        return stream


def plain_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` as plain text, starting at the user's code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == _HERE:
        tb = tb.tb_next
    return "".join(traceback.TracebackException(type(exc), exc, tb).format())


def _error(exc: BaseException, ename: str | None = None, evalue: str | None = None) -> dict:
    return {
        "ename": ename or type(exc).__name__,
        "evalue": str(exc) if evalue is None else evalue,
        "traceback": plain_traceback(exc),
    }


_loaded: dict[bytes, Any] = {}  # handler pickle -> handler: each is unpickled once per engine


def _loads(blob: Any) -> Any:
    # an in-process executor passes objects as they are; engines get pickles
    return pickle.loads(blob) if isinstance(blob, (bytes, bytearray)) else blob


def _load_handler(blob: Any) -> Any:
    """The handler stages in ``blob``; the same bytes always give the same functions."""
    if not isinstance(blob, (bytes, bytearray)):
        return blob
    stages = _loaded.get(blob)
    if stages is None:
        if len(_loaded) >= 64:
            _loaded.clear()
        stages = _loaded[bytes(blob)] = pickle.loads(blob)
    return stages


def run_attempt(
    meta: dict,
    handler_blob: bytes | tuple,
    args_blob: bytes | dict,
    inputs: dict[str, bytes | None],
    max_result_bytes: int,
    capture_limit: int = 1_000_000,
) -> dict:
    """Run one attempt of one job and describe how it ended.

    meta: ``id``, ``type``, ``run_id``, ``attempt``. handler_blob: the pickled
    ``(pre_process, process, post_process)`` stages (or the tuple itself, in
    process); args_blob: the pickled args dict (or the dict). Returns a dict with
    ``kind`` (ok, fault, abort, error, interrupted), ``result`` (pickled
    bytes), ``error``, ``message``, ``silent``, ``stdout``, ``stderr``,
    ``started``, ``ended``.
    """
    started = time.time()
    stdout, stderr = _router("stdout"), _router("stderr")
    out = BoundedText(capture_limit, stdout.fallback)
    err = BoundedText(capture_limit, stderr.fallback)
    report: dict[str, Any] = {"kind": "ok", "started": started}
    job_type = meta["type"]
    try:
        with stdout.capture(out), stderr.capture(err):
            report.update(_run_stages(meta, handler_blob, args_blob, inputs, max_result_bytes))
    except BaseException as exc:  # noqa: BLE001 - every outcome is reported, never raised
        report.update(kind="error", error=_error(exc, evalue=f"{exc} (while running {job_type!r})"))
    out.flush()
    err.flush()
    report.update(stdout=out.getvalue(), stderr=err.getvalue(), ended=time.time())
    return report


def _run_stages(meta, handler_blob, args_blob, inputs, max_result_bytes) -> dict:
    job_type = meta["type"]
    try:
        pre, process, post = _load_handler(handler_blob)
        args = _loads(args_blob)
        loaded = {parent: _loads(blob) for parent, blob in inputs.items()}
    except Exception as exc:
        missing = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
        fix = (
            f"install {missing!r} where the engines run"
            if missing
            else "make sure the engines have the same packages as the notebook"
        )
        return {
            "kind": "error",
            "error": _error(exc, evalue=f"the handler of {job_type!r} or its inputs cannot be loaded on the engine: {exc}; {fix}"),
        }
    job = Job(meta["id"], job_type, meta["run_id"], args, meta["attempt"], loaded)
    try:
        if pre is not None:
            new_job = pre(job)
            job = job if new_job is None else new_job
        result = process(job)
        if post is not None:
            result = post(job, result)
    except Fault as exc:
        return {"kind": "fault", "message": str(exc), "error": _error(exc)}
    except Abort as exc:
        return {"kind": "abort", "message": str(exc), "silent": exc.silent, "error": None if exc.silent else _error(exc)}
    except KeyboardInterrupt as exc:
        return {"kind": "interrupted", "error": _error(exc, evalue="the job was interrupted")}
    except BaseException as exc:  # noqa: BLE001 - SystemExit too fails only this job
        return {"kind": "error", "error": _error(exc)}
    return _pack_result(job_type, result, max_result_bytes)


def _pack_result(job_type: str, result: Any, max_result_bytes: int) -> dict:
    import cloudpickle

    try:
        blob = cloudpickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # noqa: BLE001
        return {
            "kind": "error",
            "error": _error(
                exc,
                ename="UnpicklableResult",
                evalue=(
                    f"the result of {job_type!r} ({type(result).__name__}) cannot be pickled "
                    f"to send it back: {exc}. Return plain data (numbers, strings, lists, dicts, "
                    "arrays), or write it to a file and return the path."
                ),
            ),
        }
    if len(blob) > max_result_bytes:
        return {
            "kind": "error",
            "error": {
                "ename": "ResultTooLarge",
                "evalue": (
                    f"the result of {job_type!r} is {len(blob):,} bytes pickled, over "
                    f"max_result_bytes={max_result_bytes:,}. Write large data to a file and "
                    "return its path, or raise max_result_bytes."
                ),
                "traceback": "",
            },
        }
    return {"kind": "ok", "result": blob}


def _imported_names(code: Any) -> set[str]:
    """Top-level module names a code object (and the code nested in it) imports."""
    import dis

    names: set[str] = set()
    stack = [code]
    while stack:
        co = stack.pop()
        for ins in dis.get_instructions(co):
            if ins.opname == "IMPORT_NAME" and isinstance(ins.argval, str):
                names.add(ins.argval.split(".")[0])
        stack.extend(c for c in co.co_consts if hasattr(c, "co_code"))
    return names


def preflight(handlers: dict[str, bytes]) -> dict[str, str]:
    """Run on one engine before a run: job type -> why its handler cannot run here.

    Loads each pickled handler (which imports the modules it refers to) and
    checks that the modules its code imports can be found.
    """
    import importlib.util

    problems: dict[str, str] = {}
    for job, blob in handlers.items():
        try:
            stages = pickle.loads(blob)
        except Exception as exc:
            missing = getattr(exc, "name", None)
            problems[job] = f"module {missing!r} is not installed on the engines" if missing else str(exc)
            continue
        for fn in stages:
            code = getattr(fn, "__code__", None)
            if code is None:
                continue
            for name in sorted(_imported_names(code)):
                if name not in sys.modules and importlib.util.find_spec(name) is None:
                    problems[job] = f"it imports {name!r}, which is not installed on the engines"
                    break
            if job in problems:
                break
    return problems
