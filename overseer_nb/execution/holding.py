"""On an engine: results kept in memory and written to the store; inputs read from either.

A result bigger than the inline limit stays where it was made: in this
engine's memory (for a child that runs here next, read without a copy) and in
the store (for every other reader), written by a thread so the attempt's
report goes back at once. A child reads an input from this engine's memory
when it is here, else from the store's file (memory-mapped), waiting for the
file while its writer is still writing. Memory is bounded: the oldest results
leave it first once they are safely on disk.

Imported on the engines: standard library, cloudpickle and ``overseer_nb.store`` only.
"""

from __future__ import annotations

import os
import reprlib
import threading
import time
from collections import OrderedDict
from typing import Any

from ..store import StoreFileError, dumps_parts, read_result, result_path, write_result

__all__ = ["keep", "resolve", "held_bytes", "forget_all", "InputLost", "summary_of"]

_lock = threading.Lock()
_held: OrderedDict[str, tuple[Any, int]] = OrderedDict()  # path -> (value, nbytes), oldest first
_writing: dict[str, threading.Event] = {}  # path -> set once the file is complete (or failed)
_failed: dict[str, str] = {}  # path -> why its write failed
_bytes = 0

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 120
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 6


class InputLost(Exception):
    """An input's result is neither in this engine's memory nor in the store."""


def summary_of(value: Any) -> tuple[str, str]:
    """(type name, short repr) of a result, for displays that do not load it."""
    kind = type(value)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    try:
        text = _repr.repr(value)
    except Exception as exc:  # a repr that fails must not fail the job
        text = f"<repr failed: {type(exc).__name__}>"
    shape = getattr(value, "shape", None)
    if shape is not None and getattr(value, "dtype", None) is not None:
        text = f"{name} shape={tuple(shape)} dtype={value.dtype}"
    return name, text[:200]


def keep(
    value: Any, *, root: str, run_id: str, job: str, attempt: int, inline_limit: int, memory_bound: int
) -> dict[str, Any]:
    """Keep ``value`` here and in the store; return the report's part: ``result`` (inline bytes) or ``result_ref``.

    Raises whatever pickling raises (the caller reports an unpicklable result).
    """
    data, buffers = dumps_parts(value)
    nbytes = len(data) + sum(b.nbytes for b in buffers)
    if nbytes <= inline_limit and not buffers:
        return {"result": data, "result_ref": None}
    path = result_path(root, run_id, job, attempt)
    done = threading.Event()
    with _lock:
        _writing[path] = done
    _hold(path, value, nbytes, memory_bound)
    thread = threading.Thread(target=_write, args=(path, data, buffers, done), daemon=True, name="overseer-store-write")
    thread.start()
    type_name, summary = summary_of(value)
    return {"result": None, "result_ref": {"path": path, "nbytes": nbytes, "type": type_name, "summary": summary}}


def _write(path: str, data: bytes, buffers: list, done: threading.Event) -> None:
    try:
        write_result(path, data, buffers)
    except Exception as exc:
        with _lock:
            _failed[path] = f"{type(exc).__name__}: {exc}"
    finally:
        done.set()
        with _lock:
            _writing.pop(path, None)


def _hold(path: str, value: Any, nbytes: int, bound: int) -> None:
    global _bytes
    with _lock:
        _held[path] = (value, nbytes)
        _bytes += nbytes
        # the oldest written results leave memory first; one still being written stays
        for old in list(_held):
            if _bytes <= bound or old == path:
                break
            if old in _writing:
                continue
            _bytes -= _held.pop(old)[1]


def resolve(inp: Any, *, wait: float = 120.0) -> Any:
    """The value of one input: inline pickled bytes, or a store reference (a dict with ``path``)."""
    if not isinstance(inp, dict):
        import pickle

        return pickle.loads(inp) if isinstance(inp, (bytes, bytearray)) else inp
    path = inp["path"]
    with _lock:
        found = _held.get(path)
        if found is not None:
            _held.move_to_end(path)
            return found[0]
        writing = _writing.get(path)
    if writing is not None:
        writing.wait(wait)
    deadline = time.monotonic() + wait
    while True:
        try:
            return read_result(path)
        except StoreFileError as exc:
            with _lock:
                why = _failed.get(path)
            if why is not None:
                raise InputLost(f"the result at {path} could not be written to the store: {why}") from exc
            if time.monotonic() >= deadline or not os.path.isdir(os.path.dirname(path)) and time.monotonic() >= deadline:
                raise InputLost(f"{exc}; it never reached the store") from exc
            time.sleep(0.01)  # its writer, on another engine, is still writing


def held_bytes() -> int:
    """Bytes of results this engine holds in memory now."""
    return _bytes


def forget_all() -> None:
    """Drop every result held in memory (they stay in the store)."""
    global _bytes
    with _lock:
        _held.clear()
        _bytes = 0
