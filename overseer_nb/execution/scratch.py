"""Per-attempt scratch folders: where an engine keeps an attempt's output while it runs.

The kernel names one folder per attempt (under a user-only folder in its temp
directory) and sends the path with the task. The engine writes the attempt's
captured stdout/stderr there (and a native crash's stack, through
``faulthandler``) and removes it when the attempt ends. If the engine dies, the
files stay: a kernel on the same host (or sharing that file system) reads them
as the attempt's last output. On another host the folder is made on that
host's disk instead; the kernel cannot read it and says where it is.

A withdrawn attempt also gets a marker file beside its folder, which the engine
checks before running the handler (see :func:`withdrawn`). What a kernel lost
track of (its cluster stopped under it, or it crashed) is swept a day later.
Standard library only: this runs on the engines.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile

__all__ = ["scratch_path", "make_scratch", "mark_withdrawn", "withdrawn", "forget", "sweep"]


def _user() -> str:
    getuid = getattr(os, "getuid", None)
    if getuid is not None:
        return str(getuid())
    import getpass

    return getpass.getuser()


def _private_dir(path: str) -> bool:
    """Make ``path`` a folder only this user can use; False if it is someone else's."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError:
        return False
    getuid = getattr(os, "getuid", None)
    return getuid is None or (st.st_uid == getuid() and not st.st_mode & 0o077)


def base_dir() -> str:
    """This user's folder of attempt scratch folders in the temp directory."""
    return os.path.join(tempfile.gettempdir(), f"overseer_nb-{_user()}")


def scratch_path(run_id: str, job: str, attempt: int) -> str:
    """The scratch folder of attempt ``attempt`` of ``job`` in run ``run_id`` (not created)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", job)[:40]
    digest = hashlib.sha1(job.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    run = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:60]
    return os.path.join(base_dir(), f"{run}.{safe}.{digest}.{attempt}")


_checked: set[str] = set()  # folders of scratch folders found this user's only, by this process


def make_scratch(path: str | None, *, again: bool = True) -> str:
    """Create ``path`` on this host (user-only) and return it; a fresh temp folder if it cannot be."""
    parent = os.path.dirname(path) if path else ""
    if path and (parent in _checked or _private_dir(parent)):
        _checked.add(parent)
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            if _private_dir(path):
                return path
        except OSError:
            _checked.discard(parent)  # its folder went away: made (and checked) anew, once
            if again:
                return make_scratch(path, again=False)
    return tempfile.mkdtemp(prefix="overseer_nb-attempt-")


def mark_withdrawn(path: str) -> None:
    """Leave the marker saying the attempt of scratch folder ``path`` was withdrawn (best effort)."""
    if _private_dir(os.path.dirname(path)):
        with contextlib.suppress(OSError), open(path + ".withdrawn", "w"):
            pass


def withdrawn(path: str | None) -> bool:
    """True if the attempt of scratch folder ``path`` was withdrawn (on this host's disk)."""
    return bool(path) and os.path.exists(f"{path}.withdrawn")


def forget(path: str) -> None:
    """Delete the scratch folder ``path``, its files and its withdrawal marker, if any."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.unlink(path + ".withdrawn")


def sweep(max_age: float = 86400.0) -> None:
    """Delete scratch folders and markers not touched for ``max_age`` seconds (their attempts ended long ago)."""
    import time

    base = base_dir()
    try:
        names = os.listdir(base)
    except OSError:
        return
    old = time.time() - max_age
    for name in names:
        path = os.path.join(base, name)
        try:
            if os.lstat(path).st_mtime < old:
                forget(path[: -len(".withdrawn")] if name.endswith(".withdrawn") else path)
        except OSError:
            pass
