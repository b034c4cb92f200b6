"""The result store: where finished results live, outside the kernel (SPEC §11).

A folder of result files (pickle protocol 5, buffers out of band, read
through a memory map), one sub-folder per run. Engines write and read it;
the kernel holds :class:`ResultRef`\\ s and reads a value only when asked.
"""

from __future__ import annotations

import os
import tempfile

from .files import StoreFileError, dumps_parts, read_result, write_result
from .results import ResultRef, ResultStore, RunUsage, begin_session, result_path, stale_session

__all__ = [
    "ENV_VAR",
    "ResultRef",
    "begin_session",
    "stale_session",
    "ResultStore",
    "RunUsage",
    "StoreFileError",
    "dumps_parts",
    "read_result",
    "result_path",
    "store_location",
    "write_result",
]

ENV_VAR = "OVERSEER_NB_STORE"


def store_location(store: str | os.PathLike | None = None, *, configured: str = "", journal_path: str | None = None) -> str:
    """Where results are kept: the first that is set of ``store``, the environment, the option, beside the journal.

    configured: ``c.Overseer.store``. journal_path: the journal file (None or
    ``":memory:"``: no journal on disk, so a folder in the temporary directory
    of this user).
    """
    for value in (store, os.environ.get(ENV_VAR, ""), configured):
        if value:
            return os.path.abspath(os.path.expanduser(os.fspath(value)))
    if journal_path and journal_path != ":memory:":
        return os.path.join(os.path.dirname(journal_path), "results")
    return os.path.join(tempfile.gettempdir(), f"overseer_nb-{os.getuid()}", "results")
