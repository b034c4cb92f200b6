"""Before a run on a cluster: does every engine share the result store with the kernel?"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

__all__ = ["check_store"]

log = logging.getLogger("overseer_nb")


def check_store(client: Any, root: str, timeout: float = 10.0) -> str | None:
    """Why the engines of ``client`` cannot share the result store at ``root`` (None: they all can).

    The kernel writes a file there; every engine must read it and write one
    the kernel reads back, which proves they all see the same folder (an
    engine on another host without a shared file system sees its own).
    Engines busy for ``timeout`` seconds are not asked.
    """
    import secrets

    from .holding import probe_store

    token = secrets.token_hex(8)
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        kernel_file = os.path.join(root, f".probe-{token}")
        fd = os.open(kernel_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token)
    except OSError as exc:
        return f"the kernel cannot write the store {root} ({exc.strerror or exc}); set store= or OVERSEER_NB_STORE to a folder it can write"
    written: list[str] = [kernel_file]
    try:
        ids = list(client.ids)
        pending = {engine: client[engine].apply_async(probe_store, root, kernel_file, token) for engine in ids}
        deadline = time.monotonic() + timeout
        for engine, ar in pending.items():
            try:
                path = ar.get(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                log.debug("overseer_nb: engine %s is busy; the store check skipped it", engine)
                continue
            except Exception as exc:
                why = getattr(exc, "evalue", None) or str(exc)
                return f"engine {engine} cannot use the store {root}: {why}. {_SHARE}"
            written.append(path)
            try:
                with open(path) as f:
                    ok = f.read() == token
            except OSError:
                ok = False
            if not ok:
                return f"engine {engine} wrote its check file in a folder {root} the kernel does not see. {_SHARE}"
        return None
    finally:
        for path in written:
            try:
                os.unlink(path)
            except OSError:
                pass


_SHARE = (
    "Give every engine and the kernel a folder they share (a shared file system): "
    "store= of ov.run, OVERSEER_NB_STORE or c.Overseer.store"
)
