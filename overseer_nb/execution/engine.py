"""What runs on an engine: one attempt of one job, and the pre-flight check.

Imported on the engines by reference, so everything it needs is here or in the light
modules it imports (``job``, ``signals``, ``states``, ``store``, ``text`` through :mod:`.capture`,
and the standard-library-only :mod:`.sandbox`, :mod:`.scratch` and :mod:`.errorstack`).
:func:`run_attempt` never raises: every outcome comes back as an :class:`AttemptReport`.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any, NamedTuple, TypedDict

from ..job import Job
from ..signals import Abort, Fault
from ..states import (
    OUTCOME_ABORT,
    OUTCOME_ERROR,
    OUTCOME_FAULT,
    OUTCOME_FENCED,
    OUTCOME_INPUT_LOST,
    OUTCOME_INTERRUPTED,
    OUTCOME_OK,
)
from ..store import stale_session
from .capture import BoundedText, FdCapture, FileSink, collapse_cr, thread_router
from .errorstack import error_stack
from .holding import InputLost, NotFinished, TooLarge, keep, resolve
from .sandbox import Sandbox, current_task
from .scratch import make_scratch, withdrawn

__all__ = ["run_attempt", "AttemptReport", "ErrorReport", "engine_identity", "preflight"]

_HERE = __file__


class _ErrorStack(TypedDict, total=False):
    stack: list  # errorstack.error_stack(): the kernel renders the traceback from it


class ErrorReport(_ErrorStack):
    """An error as it travels back from the engine (``records.ErrorInfo`` on this side)."""

    ename: str
    evalue: str
    traceback: str


class AttemptReport(TypedDict):
    """How an attempt ended, as :func:`run_attempt` returns it.

    kind: one of ``states.OUTCOME_KINDS`` (``ok``, ``fault``, ``abort``, ``error``, ...).
    result: the pickled return value (``ok``, a small result or no store), or None
    with ``result_ref`` saying where it is stored (path, nbytes, type, summary).
    lost_inputs: the parents whose stored results could not be read (``input_lost``,
    ``fenced``). error: None for ``ok`` and a silent abort. message: the text of a
    fault or an abort. stdout, stderr: what the attempt printed, bounded.
    started, ended: ``time.time()`` on the engine.
    """

    kind: str
    result: bytes | None
    result_ref: dict[str, Any] | None
    lost_inputs: list[str]
    length: int | None
    type_name: str
    item_digests: list[str] | None
    error: ErrorReport | None
    message: str
    silent: bool
    stdout: str
    stderr: str
    started: float
    ended: float


class _End(NamedTuple):
    """How the stages ended: the part of an :class:`AttemptReport` that is not capture or time."""

    kind: str
    result: bytes | None = None
    error: ErrorReport | None = None
    message: str = ""
    silent: bool = False
    result_ref: dict[str, Any] | None = None
    lost_inputs: tuple[str, ...] = ()
    length: int | None = None
    type_name: str = ""
    item_digests: list[str] | None = None


def run_attempt(
    *,
    job: str,
    index: int | None = None,
    job_id: str,
    attempt: int,
    run_id: str,
    stages: bytes | tuple,
    args: bytes | Mapping[str, Any],
    inputs: Mapping[str, Any],
    max_result_bytes: int | None,
    capture_limit: int = 1_000_000,
    on_engine: bool = False,
    scratch: str | None = None,
    store: Mapping[str, Any] | None = None,
) -> AttemptReport:
    """Run one attempt of one job and report how it ended.

    job: the job type; job_id: ``job.id`` as the handler sees it. stages:
    ``(pre_process, process, post_process)``, pickled (sent to an engine) or as
    they are (in process). args: the run's args dict, pickled or as it is.
    inputs: parent job type -> its pickled result, or where it is stored (a
    dict with ``path``: read from this engine's memory if it made it, else
    from the store). ``store``: where results go (``root``, ``inline``: the
    largest inline pickle, ``memory``: the bound of results held in memory,
    ``hold``: a child needs it); None: every result comes back pickled.
    A result pickled larger than ``max_result_bytes`` (None: no cap) fails the attempt; stdout and stderr keep the
    first and last ``capture_limit // 2`` characters each (the run option
    ``max_output_chars``), with lines redrawn by ``\\r`` in their last state.

    ``on_engine`` (an ipyparallel engine, one attempt at a time): output is
    captured at the file-descriptor level in the scratch folder ``scratch``
    (subprocesses and C code included, and a native crash's stack), an
    attempt the kernel withdrew does not run, only an interrupt meant for this
    attempt stops it, and afterwards the engine's **working directory,
    environment variables, signal handlers and stdout/stderr are put back**;
    module globals, imported modules, ``sys.path`` and anything else a job
    changes stay for the next job on that engine
    (:mod:`overseer_nb.execution.sandbox`). Otherwise (jobs on threads of this
    process) only what the calling thread prints through ``sys.stdout``/
    ``sys.stderr`` is captured, and nothing is put back.
    """
    started = time.time()
    if on_engine:
        return _run_on_engine(job, index, job_id, attempt, run_id, stages, args, inputs, max_result_bytes,
                              capture_limit, scratch, started, store)
    stdout, stderr = thread_router("stdout"), thread_router("stderr")
    out = BoundedText(capture_limit, stdout.fallback)
    err = BoundedText(capture_limit, stderr.fallback)
    end = None
    try:
        with stdout.capture(out), stderr.capture(err):
            end = _run_stages(job, index, job_id, attempt, run_id, stages, args, inputs, max_result_bytes, store)
    except BaseException as exc:  # noqa: BLE001 - every outcome is reported, never raised
        end = end or _End(OUTCOME_ERROR, error=_error(exc, evalue=f"{exc} (while running {job!r})"))
    out.flush()
    err.flush()
    return _report(end, collapse_cr(out.getvalue()), collapse_cr(err.getvalue()), started)


def _run_on_engine(job, index, job_id, attempt, run_id, stages, args, inputs, max_result_bytes, limit, scratch,
                   started, store):
    task = current_task()
    if task.withdrawn or withdrawn(scratch):
        why = "the kernel withdrew this attempt before it started; its handler did not run"
        return _report(_End(OUTCOME_INTERRUPTED, error=ErrorReport(ename="Withdrawn", evalue=why, traceback="")),
                       "", "", started)
    stdout, stderr = thread_router("stdout"), thread_router("stderr")
    try:
        capture: Any = FdCapture(make_scratch(scratch))
        out: Any = FileSink(capture.files[1], stdout.fallback)
        err: Any = FileSink(capture.files[2], stderr.fallback)
    except OSError:  # no disk for the files: what Python prints is still captured
        capture = contextlib.nullcontext()
        out, err = BoundedText(limit, stdout.fallback), BoundedText(limit, stderr.fallback)
    crash_file = capture.files[2] if isinstance(capture, FdCapture) else None
    end = None
    try:
        with Sandbox(task, crash_file=crash_file), capture, stdout.capture(out), stderr.capture(err):
            end = _run_stages(job, index, job_id, attempt, run_id, stages, args, inputs, max_result_bytes, store)
    except BaseException as exc:  # noqa: BLE001 - an interrupt after the stages ended keeps their outcome
        end = end or _End(OUTCOME_ERROR, error=_error(exc, evalue=f"{exc} (while running {job!r})"))
    out.flush()
    err.flush()
    if not isinstance(capture, FdCapture):
        return _report(end, collapse_cr(out.getvalue()), collapse_cr(err.getvalue()), started)
    texts = capture.text(1, limit), capture.text(2, limit)
    capture.remove()
    return _report(end, *texts, started)


def _report(end: _End, stdout: str, stderr: str, started: float) -> AttemptReport:
    return AttemptReport(
        kind=end.kind,
        result=end.result,
        result_ref=end.result_ref,
        lost_inputs=list(end.lost_inputs),
        length=end.length,
        type_name=end.type_name,
        item_digests=end.item_digests,
        error=end.error,
        message=end.message,
        silent=end.silent,
        stdout=stdout,
        stderr=stderr,
        started=started,
        ended=time.time(),
    )


def _run_stages(job_name, index, job_id, attempt, run_id, stages, args, inputs, max_result_bytes, store) -> _End:
    job_type = job_name if index is None else job_name[: job_name.rindex("[")]
    if store is not None and "root" in store and stale_session(store["root"], run_id, store.get("session", "")):
        return _End(OUTCOME_FENCED, message="sent by a kernel that stopped since; the resumed run sends it again")
    try:
        pre, process, post = _load_stages(stages)
        job_args = _unpickled(args)
        loaded = {parent: resolve(parent, value) for parent, value in inputs.items()}
    except NotFinished as exc:  # sent ahead of a parent that left no result: the handler does not run
        return _End(OUTCOME_FENCED, message=str(exc), lost_inputs=(exc.job,))
    except InputLost as exc:
        return _End(OUTCOME_INPUT_LOST, message=str(exc), lost_inputs=(exc.job,),
                    error=ErrorReport(ename="InputLost", evalue=f"{exc}; it runs again, then this job", traceback=""))
    except Exception as exc:
        missing = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
        fix = (
            f"install {missing!r} where the engines run"
            if missing
            else "make sure the engines have the same packages as the notebook"
        )
        return _End(
            OUTCOME_ERROR,
            error=_error(exc, evalue=f"the handler of {job_type!r} or its inputs cannot be loaded on the engine: {exc}; {fix}"),
        )
    job = Job(job_id, job_type, run_id, job_args, attempt, loaded, index)
    try:
        if pre is not None:
            new_job = pre(job)
            job = job if new_job is None else new_job
        result = process(job)
        if post is not None:
            result = post(job, result)
    except Fault as exc:
        return _End(OUTCOME_FAULT, message=str(exc), error=_error(exc))
    except Abort as exc:
        return _End(OUTCOME_ABORT, message=str(exc), silent=exc.silent, error=None if exc.silent else _error(exc))
    except KeyboardInterrupt as exc:
        return _End(OUTCOME_INTERRUPTED, error=_error(exc, evalue="the job was interrupted"))
    except BaseException as exc:  # noqa: BLE001 - SystemExit too fails only this job
        return _End(OUTCOME_ERROR, error=_error(exc))
    end = _pack_result(job_name, result, max_result_bytes, store, run_id, attempt)
    if end.kind != OUTCOME_OK:
        return end
    kind = type(result)
    length = len(result) if isinstance(result, (list, tuple, range)) else None
    digests = _item_digests(result) if length is not None and store is not None and store.get("digest") else None
    return end._replace(length=length, item_digests=digests, type_name=kind.__name__ if kind.__module__ == "builtins"
                        else f"{kind.__module__}.{kind.__qualname__}")


def _item_digests(items: Any) -> list[str] | None:
    """Each item's content digest (the cache keys a mapped type's items by them, not by position)."""
    import hashlib

    import cloudpickle

    try:
        return [hashlib.sha256(cloudpickle.dumps(item, protocol=5)).hexdigest()[:32] for item in items]
    except Exception:
        return None


def _pack_result(job_type: str, result: Any, max_result_bytes: int | None, store: Mapping[str, Any] | None,
                 run_id: str, attempt: int) -> _End:
    import cloudpickle

    ref = None
    try:
        if store is None or "root" not in store:
            blob = cloudpickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            size = len(blob)
        else:
            blob, ref = keep(result, root=store["root"], run_id=run_id, job=job_type, attempt=attempt,
                             inline_limit=store["inline"], memory_bound=store["memory"], hold=store["hold"],
                             max_bytes=max_result_bytes, digest=store.get("digest", False), sync=store.get("sync", 0),
                             session=store.get("session", ""), keep_small=store.get("keep", False))
            size = len(blob) if blob is not None else ref["nbytes"]
    except TooLarge as exc:
        size = exc.nbytes
    except BaseException as exc:  # noqa: BLE001
        return _End(
            OUTCOME_ERROR,
            error=_error(
                exc,
                ename="UnpicklableResult",
                evalue=(
                    f"the result of {job_type!r} ({type(result).__name__}) cannot be pickled "
                    f"to send it back: {exc}. Return plain data (numbers, strings, lists, dicts, "
                    "arrays), or write it to a file and return the path."
                ),
            ),
        )
    if max_result_bytes is not None and size > max_result_bytes:
        return _End(
            OUTCOME_ERROR,
            error=ErrorReport(
                ename="ResultTooLarge",
                evalue=(
                    f"the result of {job_type!r} is {size:,} bytes pickled, over "
                    f"max_result_bytes={max_result_bytes:,}. Return less, or raise max_result_bytes "
                    "(None: no cap)."
                ),
                traceback="",
            ),
        )
    return _End(OUTCOME_OK, result=blob, result_ref=ref)


def plain_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` as plain text, starting at the user's code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == _HERE:
        tb = tb.tb_next
    return "".join(traceback.TracebackException(type(exc), exc, tb).format())


def _error(exc: BaseException, ename: str | None = None, evalue: str | None = None) -> ErrorReport:
    return ErrorReport(
        ename=ename or type(exc).__name__,
        evalue=str(exc) if evalue is None else evalue,
        traceback=plain_traceback(exc),
        stack=error_stack(exc),
    )


_loaded: dict[bytes, Any] = {}  # stages pickle -> stages: each is unpickled once per engine


def _unpickled(value: Any) -> Any:
    # an in-process executor passes objects as they are; engines get pickles
    return pickle.loads(value) if isinstance(value, (bytes, bytearray)) else value


def _load_stages(stages: Any) -> Any:
    """The stage functions in ``stages``; the same bytes always give the same functions."""
    if not isinstance(stages, (bytes, bytearray)):
        return stages
    functions = _loaded.get(bytes(stages))
    if functions is None:
        if len(_loaded) >= 64:
            _loaded.clear()
        functions = _loaded[bytes(stages)] = pickle.loads(stages)
    return functions


def engine_identity() -> tuple[int, str]:
    """Run on an engine: its process id and host name."""
    import os
    import socket

    return os.getpid(), socket.gethostname()

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
