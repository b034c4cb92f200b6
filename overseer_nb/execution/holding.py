"""On an engine: results kept in memory and written to the store; inputs read from either.

A result bigger than the inline limit stays where it was made: in this
engine's memory (for a child that runs here, read without a copy) and in the
store (for every other reader), written by a thread so the attempt's report
goes back at once. While the file is being written a ``.pending`` marker
beside it names the writer (host and pid); a write that fails leaves a
``.failed`` marker saying why. A child reads an input from this engine's
memory when it is here, else from the store's file (memory-mapped), waiting
while its writer is alive and writing. Memory is bounded: the oldest results
leave it first once they are safely on disk, and the kernel releases a
result once every job that needs it has started, and a run's results when
the run ends.

Imported on the engines: standard library, cloudpickle, ``overseer_nb.store`` and :mod:`.processes` only.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import reprlib
import socket
import threading
import time
from collections import OrderedDict
from typing import Any

from ..store import StoreFileError, dumps_parts, read_result, result_path, write_result
from .processes import pid_alive

__all__ = ["keep", "resolve", "release", "release_run", "held", "writing", "probe_store", "InputLost", "NotFinished",
           "TooLarge", "summary_of",
           "PENDING", "FAILED"]

PENDING = ".pending"
FAILED = ".failed"

_lock = threading.Lock()
_held: OrderedDict[str, tuple[Any, int]] = OrderedDict()  # path -> (value, nbytes), oldest first
_writing: dict[str, threading.Event] = {}  # path -> set once its file is complete (or failed)
_bytes = 0

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 120
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 6


class InputLost(Exception):
    """An input's result is neither in this engine's memory nor in the store (``job``: whose result)."""

    def __init__(self, job: str, why: str):
        super().__init__(f"the result of {job!r} could not be read: {why}")
        self.job = job


class NotFinished(Exception):
    """A task sent ahead of ``job`` cannot use its result here: its attempt left none, or writes it elsewhere.

    Left none: it did not finish (or was withdrawn). Another engine still
    writing it (a big result): the task is sent again to run there, which beats
    waiting for the whole file here, as a task the kernel sends is placed.
    """

    def __init__(self, job: str, elsewhere: bool = False):
        why = ("whose big result is still being written on another engine; it is sent again to run there"
               if elsewhere else f"whose attempt left no result; it runs when {job!r} finishes")
        super().__init__(f"it was sent ahead of {job!r}, {why}")
        self.job = job


class TooLarge(Exception):
    """A result over ``max_result_bytes``: ``nbytes`` is its pickled size."""

    def __init__(self, nbytes: int):
        super().__init__(nbytes)
        self.nbytes = nbytes


def summary_of(value: Any) -> tuple[str, str]:
    """(type name, short repr) of a result, for displays that do not load it."""
    kind = type(value)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if isinstance(shape, tuple) and dtype is not None:
        return name, f"{name} shape={shape} dtype={dtype}"
    try:
        text = _repr.repr(value)
    except Exception as exc:  # a repr that fails must not fail the job
        text = f"<repr failed: {type(exc).__name__}>"
    return name, text[:200]


def keep(value: Any, *, root: str, run_id: str, job: str, attempt: int, inline_limit: int,
         memory_bound: int, hold: bool, max_bytes: int | None = None,
         digest: bool = False, sync: int = 0, session: str = "",
         keep_small: bool = False) -> tuple[bytes | None, dict | None]:
    """Keep ``value``: ``(pickle, None)`` for a small one, else ``(None, ref)`` with it in the store.

    ``hold``: also keep it in this engine's memory (a child needs it). The
    file is written by a thread; ``ref`` (path, nbytes, type, summary) goes
    back at once. One of at most ``sync`` bytes (and no out-of-band buffers)
    is written before this returns: a child sent ahead may start as soon as
    the report is out; with ``keep_small``, a small one also stays in this
    engine's memory (a child sent ahead to run here reads it there). Raises
    whatever pickling raises, and :class:`TooLarge` for a result over ``max_bytes``.
    """
    data, buffers = dumps_parts(value)
    nbytes = len(data) + sum(b.nbytes for b in buffers)
    if max_bytes is not None and nbytes > max_bytes:
        raise TooLarge(nbytes)
    path = result_path(root, run_id, job, attempt, session)
    if nbytes <= inline_limit and not buffers:
        if keep_small and hold:
            _hold(path, value, nbytes, memory_bound)
        return data, None
    if nbytes <= sync and not buffers:
        return _keep_now(value, path, data, nbytes, hold, memory_bound, digest)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        _mark(path + PENDING, f"{socket.gethostname()} {os.getpid()}")
    except OSError:  # the store cannot be written here now (full, gone): the result travels with the report
        import cloudpickle

        return cloudpickle.dumps(value, protocol=5), None
    done = threading.Event()
    with _lock:
        _writing[path] = done
    if hold:
        _hold(path, value, nbytes, memory_bound)
    threading.Thread(target=_write, args=(path, data, buffers, done), daemon=True,
                     name="overseer-store-write").start()
    return None, _ref(value, path, nbytes, data, buffers, digest)


def _keep_now(value: Any, path: str, data: bytes, nbytes: int, hold: bool, memory_bound: int,
              digest: bool) -> tuple[bytes | None, dict | None]:
    """A small result a child may read at once: written to the store before the report goes back."""
    try:
        write_result(path, data, [])
    except OSError:  # the store cannot be written here now: the result travels with the report
        return data, None
    if hold:
        _hold(path, value, nbytes, memory_bound)
    return None, _ref(value, path, nbytes, data, [], digest)


def _ref(value: Any, path: str, nbytes: int, data: bytes, buffers: list, digest: bool) -> dict:
    type_name, summary = summary_of(value)
    ref = {"path": path, "nbytes": nbytes, "type": type_name, "summary": summary}
    if digest:  # the cache compares contents: the pickle and its buffers, as written
        h = hashlib.sha256(data)
        for buf in buffers:
            h.update(buf)
        ref["digest"] = h.hexdigest()[:32]
    return ref


def _mark(path: str, text: str) -> None:
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _write(path: str, data: bytes, buffers: list, done: threading.Event) -> None:
    try:
        write_result(path, data, buffers)
    except BaseException as exc:  # noqa: BLE001 - a reader must learn why, whatever it was
        try:
            _mark(path + FAILED, f"{type(exc).__name__}: {exc}")
        except OSError:
            pass
        release([path])
    finally:
        try:
            os.unlink(path + PENDING)
        except OSError:
            pass
        with _lock:
            _writing.pop(path, None)
        done.set()
        _shrink(None)


def _hold(path: str, value: Any, nbytes: int, bound: int) -> None:
    global _bytes
    with _lock:
        if path in _held:
            return
        _held[path] = (value, nbytes)
        _bytes += nbytes
    _shrink(bound)


_bound = [4 * 2**30]


def _shrink(bound: int | None) -> None:
    """Drop the oldest results already on disk until the held bytes are within the bound."""
    global _bytes
    with _lock:
        if bound is not None:
            _bound[0] = bound
        for old in list(_held):
            if _bytes <= _bound[0]:
                break
            if old not in _writing:
                _bytes -= _held.pop(old)[1]


def resolve(job: str, inp: Any) -> Any:
    """The value of input ``job``: inline pickled bytes, a store reference (a dict with ``path``), or a value.

    ``{"item": i, "of": input}``: item ``i`` of that input (an item of a mapped
    type); ``{"items": [input, ...]}``: the list of those inputs' values (a
    mapped parent taken whole). A stored value read from the file is kept in
    memory for the next job here that needs it (items of one mapped type share
    their parent). Raises :class:`InputLost` if a stored result cannot be read:
    its write failed, or its writer died before the file was complete.
    """
    if not isinstance(inp, dict):
        return pickle.loads(inp) if isinstance(inp, (bytes, bytearray)) else inp
    if "items" in inp:
        return [resolve(job, part) for part in inp["items"]]
    if "item" in inp:
        return resolve(job, inp["of"])[inp["item"]]
    value = _read(job, inp)
    return value


def _read(job: str, inp: dict) -> Any:
    path = inp["path"]
    with _lock:
        found = _held.get(path)
        if found is not None:
            _held.move_to_end(path)
            return found[0]
        writing = _writing.get(path)
    if writing is not None:
        writing.wait()
    delay = 0.002
    while True:
        try:
            value = read_result(path)
            _hold(path, value, int(inp.get("nbytes", 0)), _bound[0])
            return value
        except StoreFileError as exc:
            if inp.get("after"):  # the scheduler started it after its parent ended
                if not any(os.path.exists(path + end) for end in ("", PENDING, FAILED)):
                    raise NotFinished(job) from exc  # no result
                if not os.path.exists(path) and not _why_missing(path):
                    raise NotFinished(job, elsewhere=True) from exc  # written on another engine now
            why = _why_missing(path)
            if why:
                raise InputLost(job, why) from exc
        time.sleep(delay)  # its writer, on another engine, is still writing
        delay = min(0.05, delay * 2)


def _why_missing(path: str) -> str:
    """Why the file at ``path`` will never appear, or '' while its writer may still be writing it."""
    try:
        with open(path + FAILED) as f:
            return f"writing it to the store failed: {f.read()}"
    except OSError:
        pass
    try:
        with open(path + PENDING) as f:
            host, pid = f.read().split()
    except (OSError, ValueError):
        if os.path.exists(path):
            return ""  # written between the two looks
        return f"{path} is not in the store (deleted, pruned, or its engine died before writing it)"
    if host == socket.gethostname() and not pid_alive(int(pid)):
        return f"the engine writing it (pid {pid}) died before {path} was complete"
    return ""


def release(paths: list[str]) -> int:
    """Let the results at ``paths`` leave this engine's memory (they stay in the store); return bytes freed."""
    global _bytes
    freed = 0
    with _lock:
        for path in paths:
            found = _held.pop(path, None)
            if found is not None:
                freed += found[1]
        _bytes -= freed
    return freed


def release_run(run_id: str) -> int:
    """Let every result of run ``run_id`` leave this engine's memory; return bytes freed."""
    with _lock:
        paths = [p for p in _held if os.path.basename(os.path.dirname(p)) == run_id]
    return release(paths)


def held() -> tuple[int, int]:
    """(results, bytes) this engine holds in memory now."""
    with _lock:
        return len(_held), _bytes


def writing() -> int:
    """Results this engine is writing to the store now (each keeps its buffers until written)."""
    with _lock:
        return len(_writing)


def probe_store(root: str, kernel_file: str, token: str) -> str:
    """Run on each engine before a run: prove it can read what the kernel wrote and write what it reads.

    Returns the path of the file this engine wrote (the kernel reads it back);
    raises ``OSError`` saying what failed.
    """
    try:
        with open(kernel_file) as f:
            seen = f.read()
    except OSError as exc:
        raise OSError(f"cannot read {kernel_file}, which the kernel wrote there ({exc.strerror or exc})") from exc
    if seen != token:
        raise OSError(f"{kernel_file} holds something else than the kernel wrote there (another folder by that name)")
    mine = f"{kernel_file}.{socket.gethostname()}.{os.getpid()}"
    _mark(mine, token)
    return mine
