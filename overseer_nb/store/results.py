"""The result store: a folder of result files, one sub-folder per run.

``<root>/<run id>/<job>.<attempt>.ovnb`` (the job type quoted so any name makes
one safe file name). A :class:`ResultRef` is what the kernel, the journal and
the children of a job hold instead of the result's bytes: where the file is,
how big it is, and a short summary for displays.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .files import read_result

__all__ = ["ResultRef", "ResultStore", "RunUsage", "result_path", "begin_session", "stale_session"]

SUFFIX = ".ovnb"


def result_path(root: str, run_id: str, job: str, attempt: int, session: str = "") -> str:
    """Where attempt ``attempt`` of ``job`` of run ``run_id`` keeps its result under ``root``.

    ``session``: '' for the kernel that started the run; a resumed run's own
    token, so its attempts never share a file with one an earlier kernel sent.
    """
    name = urllib.parse.quote(job, safe="-_")
    tag = f"~{session}" if session else ""
    return os.path.join(root, run_id, f"{name}.{attempt}{tag}{SUFFIX}")


SESSION = "session"  # <root>/<run>/session: the token of the kernel that carries the run on now


def begin_session(root: str, run_id: str, session: str) -> None:
    """Say that the kernel with ``session`` carries run ``run_id`` on: tasks an earlier kernel sent do not run."""
    folder = os.path.join(root, run_id)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    tmp = os.path.join(folder, f".{SESSION}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(session)
    os.replace(tmp, os.path.join(folder, SESSION))


def stale_session(root: str, run_id: str, session: str) -> bool:
    """True if a kernel other than the one with ``session`` carries run ``run_id`` on now (it was resumed)."""
    try:
        with open(os.path.join(root, run_id, SESSION)) as f:
            return f.read() != session
    except OSError:
        return bool(session)  # no word yet: only the first kernel's tasks run


@dataclass(frozen=True)
class ResultRef:
    """Where a finished job's result is: a file of the store (and, while it lives, its engine's memory).

    path: the result file; nbytes: its size; type_name and summary: what the
    kernel shows without reading the file; engine: the engine that made it
    (it may still hold it in memory).
    """

    path: str
    nbytes: int
    type_name: str = ""
    summary: str = ""
    engine: Any = None
    digest: str = ""  # of its contents, when made with the cache on ('' : not computed)

    def load(self) -> Any:
        """The result, read from its file (large arrays are memory-mapped, not copied)."""
        return read_result(self.path)

    def exists(self) -> bool:
        """True while the file is in the store."""
        return os.path.exists(self.path)

    def to_json(self) -> dict[str, Any]:
        """What the journal keeps and an engine is sent: path, size, type and summary (JSON-able)."""
        data = {"path": self.path, "nbytes": self.nbytes, "type": self.type_name, "summary": self.summary}
        if self.digest:
            data["digest"] = self.digest
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResultRef:
        """The reference :meth:`to_json` gave (``engine`` too, if the dict has it)."""
        return cls(data["path"], int(data["nbytes"]), data.get("type", ""), data.get("summary", ""),
                   data.get("engine"), data.get("digest", ""))

    def __repr__(self) -> str:
        return f"<stored result: {self.summary or self.type_name}, {self.nbytes:,} bytes, {self.path}>"


@dataclass(frozen=True)
class RunUsage:
    """What the store holds for one run."""

    run_id: str
    files: int
    nbytes: int
    newest: float  # modification time of its newest file (seconds since the epoch)


class ResultStore:
    """The store at ``root`` (a folder; created user-only on first write)."""

    def __init__(self, root: str):
        self.root = os.path.abspath(os.path.expanduser(root))

    def __repr__(self) -> str:
        return f"<ResultStore {self.root}>"

    def path(self, run_id: str, job: str, attempt: int) -> str:
        return result_path(self.root, run_id, job, attempt)

    def usage(self) -> list[RunUsage]:
        """One :class:`RunUsage` per run with files in the store, newest first."""
        found = []
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            files = nbytes = 0
            newest = 0.0
            for f in os.scandir(entry.path):
                if f.name.endswith(SUFFIX) and f.is_file(follow_symlinks=False):
                    st = f.stat()
                    files += 1
                    nbytes += st.st_size
                    newest = max(newest, st.st_mtime)
            found.append(RunUsage(entry.name, files, nbytes, newest or entry.stat().st_mtime))
        return sorted(found, key=lambda u: u.newest, reverse=True)

    def delete_runs(self, run_ids: Iterable[str]) -> int:
        """Delete the results of ``run_ids``; return the bytes freed."""
        freed = 0
        for run_id in run_ids:
            folder = os.path.join(self.root, run_id)
            if os.path.dirname(os.path.abspath(folder)) != self.root or not os.path.isdir(folder):
                continue  # never outside the store
            for f in os.scandir(folder):
                try:
                    freed += f.stat().st_size
                except OSError:
                    pass
            shutil.rmtree(folder, ignore_errors=True)
        return freed

    def sweep_temporaries(self, older_than: float = 3600.0) -> None:
        """Remove half-written files a crashed writer left behind."""
        cutoff = time.time() - older_than
        for usage in self.usage():
            folder = os.path.join(self.root, usage.run_id)
            for f in os.scandir(folder):
                if f.name.endswith(".tmp") and f.stat().st_mtime < cutoff:
                    try:
                        os.unlink(f.path)
                    except OSError:
                        pass
