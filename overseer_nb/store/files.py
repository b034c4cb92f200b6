"""One result, one file: pickle protocol 5 with its buffers out of band, read back through a memory map.

Engines import this module (it uses the standard library and cloudpickle
only). A file holds a small header, the pickle stream and each large buffer
(a numpy array's data, a data frame's columns, an Arrow table's buffers)
aligned to 64 bytes, so a reader on the same host maps the file and gets its
arrays without copying them. The mapping is copy-on-write: a job may change
its input without touching the file or another job's view of it.

Writes go to a temporary name and are renamed into place, so a reader sees a
whole file or none. Files and folders are created readable by their user only.
"""

from __future__ import annotations

import json
import mmap
import os
import pickle
from typing import Any

__all__ = ["MAGIC", "dumps_parts", "write_result", "read_result", "ALIGN", "StoreFileError"]

MAGIC = b"OVNBR1\n"
ALIGN = 64
_INBAND_BELOW = 64 * 1024  # small buffers stay in the pickle: a memory map per buffer costs more


class StoreFileError(OSError):
    """A result file is missing, cut short or not a result file."""


def dumps_parts(value: Any) -> tuple[bytes, list[memoryview]]:
    """``value`` as a protocol-5 pickle and the large contiguous buffers it refers to (uncopied)."""
    import cloudpickle

    buffers: list[memoryview] = []

    def out_of_band(buf: pickle.PickleBuffer) -> bool:
        try:
            view = buf.raw()
        except BufferError:  # not contiguous: pickled in band
            return True
        if view.nbytes < _INBAND_BELOW:
            return True
        buffers.append(view)
        return False

    data = cloudpickle.dumps(value, protocol=5, buffer_callback=out_of_band)
    return data, buffers


def _pad(offset: int) -> int:
    return (-offset) % ALIGN


def write_result(path: str, data: bytes, buffers: list[memoryview]) -> int:
    """Write a pickle and its buffers to ``path`` (atomically, user-only); return the file's size."""
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    spans = []
    offset = 0  # relative to the end of the header, fixed up below
    layout = [("pickle", len(data))] + [("buffer", b.nbytes) for b in buffers]
    for _kind, size in layout:
        offset += _pad(offset)
        spans.append([offset, size])
        offset += size
    header = json.dumps({"pickle": spans[0], "buffers": spans[1:]}).encode()
    start = len(MAGIC) + 8 + len(header)
    start += _pad(start)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb", buffering=0) as f:
            f.write(MAGIC + len(header).to_bytes(8, "little") + header)
            f.write(b"\0" * (start - f.tell()))
            for (off, _size), chunk in zip(spans, [memoryview(data), *buffers], strict=True):
                f.write(b"\0" * (start + off - f.tell()))
                _write_all(f, chunk.cast("B"))
            size = f.tell()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return size


def _write_all(f: Any, view: memoryview) -> None:
    done = 0
    while done < view.nbytes:
        done += f.write(view[done:])


def read_result(path: str) -> Any:
    """The value in the result file ``path``; its large buffers are views of a memory map."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - the map outlives the file object
    except FileNotFoundError as exc:
        raise StoreFileError(
            f"the result file {path} is not in the store (pruned, deleted, or never written because its "
            "engine died); run.resume() runs the job again"
        ) from exc
    with f:
        size = os.fstat(f.fileno()).st_size
        if size < len(MAGIC) + 8:
            raise StoreFileError(f"the result file {path} is cut short ({size} bytes)")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    view = memoryview(mm)
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise StoreFileError(f"{path} is not an overseer_nb result file")
    hlen = int.from_bytes(view[len(MAGIC): len(MAGIC) + 8], "little")
    head_end = len(MAGIC) + 8 + hlen
    header = json.loads(bytes(view[len(MAGIC) + 8: head_end]))
    start = head_end + _pad(head_end)
    (poff, plen) = header["pickle"]
    if start + poff + plen > size or any(start + o + n > size for o, n in header["buffers"]):
        raise StoreFileError(f"the result file {path} is cut short ({size} bytes)")
    buffers = [view[start + o: start + o + n] for o, n in header["buffers"]]
    return pickle.loads(view[start + poff: start + poff + plen], buffers=buffers)
