"""On the engine: an exception's chain and frames as data, for the kernel to render as IPython would.

Standard library only (engines import it with :mod:`.engine`). The frames of
overseer_nb itself and of IPython, ipykernel and ipyparallel are left out:
what is left is the user's code, cells and modules. Code that came pickled
by value (cloudpickle: notebook functions) has lost its file name
(``<dynamic-code>``); each frame also names its code's first line, so the
kernel can tell which of the functions it sent it was.
"""

from __future__ import annotations

import linecache
import os
import sys
import traceback

__all__ = ["error_stack"]

_PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "")
_MOST = 20  # exceptions of a chain kept


def _internal_folders() -> tuple[str, ...]:
    folders = [_PACKAGE]
    for name in ("IPython", "ipykernel", "ipyparallel"):
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            folders.append(os.path.join(os.path.dirname(os.path.abspath(path)), ""))
    return tuple(folders)


def _frames(tb, internal: tuple[str, ...]) -> list:
    found = []
    for frame, lineno in traceback.walk_tb(tb):
        code = frame.f_code
        if code.co_filename.startswith(internal):
            continue
        line = linecache.getline(code.co_filename, lineno or 0, frame.f_globals).strip()
        found.append([code.co_filename, lineno or 0, code.co_name, line, code.co_firstlineno])
    return found


def error_stack(exc: BaseException) -> list:
    """The chain of ``exc``, oldest first: ``[ename, evalue, link, frames]`` per exception.

    link: how it follows the one before it, ``""`` (the first), ``"cause"``
    (``raise ... from``) or ``"context"`` (raised while handling it). frames:
    ``[filename, lineno, function, source line or "", first line of the
    function's code]``, most recent call last
    (:func:`overseer_nb.tracebacks.render_traceback` reads this shape).
    """
    internal = _internal_folders()
    chain: list = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < _MOST:
        seen.add(id(current))
        try:
            value = str(current)
        except Exception:
            value = f"<{type(current).__name__} cannot be shown>"
        chain.append([type(current).__name__, value, "", _frames(current.__traceback__, internal)])
        if current.__cause__ is not None:
            chain[-1][2], current = "cause", current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            chain[-1][2], current = "context", current.__context__
        else:
            current = None
    return chain[::-1]
