"""Tracebacks as IPython shows them, and where a handler was defined (cell ``In[5]`` or a file).

An engine reports an error's frames as data (file name, line number,
function, the source line if the engine could read it: the shape
:func:`render_traceback` reads); the kernel renders the text here, with the
source it knows: IPython keeps
every cell's source in ``linecache`` under a file name of its own, and a *code
namer* turns that name into ``In[5]``. The namers are plugged in from the
notebook side (:func:`add_namer`); with none, a cell shows as its file name.

Pure: the source is read through the ``lines`` function a caller passes
(``linecache.getlines`` in the kernel), and nothing here imports IPython.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .records import ErrorInfo

__all__ = [
    "Namer", "add_namer", "remove_namer", "cell_of", "render_traceback", "render_error", "Location", "location_of",
    "handler_function", "CAUSE", "CONTEXT", "DYNAMIC_CODE",
]

# name -> label of a block of code ("In[5]"), or None if the namer does not know it
Namer = Callable[[str], "str | None"]

_namers: list[Namer] = []

DYNAMIC_CODE = "<dynamic-code>"  # cloudpickle's file name for code it pickled by value
CAUSE, CONTEXT = "cause", "context"  # how a section follows the one before it (Python's chained exceptions)
_LINKS = {
    CAUSE: "The above exception was the direct cause of the following exception:",
    CONTEXT: "During handling of the above exception, another exception occurred:",
}
_BEFORE, _AFTER = 2, 2  # lines shown around the failing one, as IPython shows them
_NUMBERS = 7  # width of the line numbers, IPython's


def add_namer(namer: Namer) -> None:
    """Ask ``namer(filename)`` for the label of code (e.g. ``In[5]``); adding it twice adds it once."""
    if namer not in _namers:
        _namers.append(namer)


def remove_namer(namer: Namer) -> None:
    """Stop asking ``namer``; a namer not added is ignored."""
    if namer in _namers:
        _namers.remove(namer)


def cell_of(filename: str) -> str | None:
    """The label a namer gives ``filename`` (``In[5]``), or None: it is a plain file."""
    for namer in list(_namers):
        try:
            name = namer(filename)
        except Exception:  # a namer that fails names nothing; the file name stays
            name = None
        if name:
            return name
    return None


# -- rendering --------------------------------------------------------------------------------
def render_traceback(ename: str, evalue: str, sections: Sequence[Any], lines: Callable[[str], list[str]],
                     files: Mapping[tuple[str, int], str] | None = None) -> str:
    """The plain text of an error the way IPython prints it, without colours.

    sections: the chain of exceptions, oldest first, each ``(ename, evalue,
    link, frames)``: link is ``""`` for the first, else :data:`CAUSE` or
    :data:`CONTEXT`; frames are ``(filename, lineno, function, line[,
    first line of the function])``, most recent call last (line: the source
    the engine read, ``""`` if none). The last section is the error itself;
    ``ename`` and ``evalue`` are what it is reported as. ``lines(filename)``
    gives a file's source lines (for a cell: what IPython cached), ``[]`` when
    not known. ``files``: ``(function, first line) -> file name`` of the code
    that was sent, for frames of code pickled by value, whose file name the
    engine does not know (:data:`DYNAMIC_CODE`).
    """
    parts: list[str] = []
    last = len(sections) - 1
    for i, (name, value, link, frames) in enumerate(sections):
        if i == last:
            name, value = ename, evalue
        if link in _LINKS and parts:
            parts.append(f"\n{_LINKS[link]}\n\n")
        if frames:
            parts.append("Traceback (most recent call last)\n")
            parts.append("\n".join(_frame(frame, lines, files or {}) for frame in frames))
            parts.append("\n")
        parts.append(f"{name}: {value}\n" if value else f"{name}\n")
    return "".join(parts)


def render_error(error: ErrorInfo, lines: Callable[[str], list[str]],
                 files: Mapping[tuple[str, int], str] | None = None) -> ErrorInfo:
    """``error`` with its ``traceback`` rendered from its ``frames`` (unchanged if it has none)."""
    if not error.frames:
        return error
    try:
        text = render_traceback(error.ename, error.evalue, error.frames, lines, files)
    except Exception:  # frames of an unexpected shape: the engine's own plain text stays
        return replace(error, frames=())
    return replace(error, traceback=text, frames=())


def _frame(frame: Sequence[Any], lines: Callable[[str], list[str]], files: Mapping[tuple[str, int], str]) -> str:
    filename, lineno, function, sent = frame[:4]
    if filename == DYNAMIC_CODE and len(frame) > 4:
        filename = files.get((function, frame[4]), filename)
    cell = cell_of(filename)
    where = f"Cell {cell}, line {lineno}" if cell else f'File "{filename}", line {lineno}'
    head = where if function == "<module>" else f"{where}, in {function}"
    try:
        source = lines(filename) or []
    except Exception:
        source = []
    here = source[lineno - 1].rstrip("\n") if 0 < lineno <= len(source) else None
    if here is None or (sent and here.strip() != sent.strip()):
        # no source here, or not the source that ran (the file changed): only the line the engine read
        return f"{head}\n{_numbered(lineno, sent.rstrip(), True)}\n" if sent else f"{head}\n"
    first, end = max(1, lineno - _BEFORE), min(len(source), lineno + _AFTER)
    shown = [_numbered(n, source[n - 1].rstrip("\n"), n == lineno) for n in range(first, end + 1)]
    return head + "\n" + "\n".join(shown) + "\n"


def _numbered(lineno: int, text: str, current: bool) -> str:
    """IPython's numbering: ``      6 text``, and ``----> 8 text`` at the failing line."""
    number = str(lineno)
    if current:
        pad = _NUMBERS - len(number)
        arrow = "-" * (pad - 2) + "> " if pad >= 2 else ">" * pad
        return f"{arrow}{number} {text}".rstrip()
    return f"{number:>{_NUMBERS}} {text}".rstrip()


# -- where a handler was defined ------------------------------------------------------------
@dataclass(frozen=True)
class Location:
    """Where a function was defined: a notebook cell (``cell`` is ``In[5]``) or a file."""

    filename: str
    line: int
    cell: str | None = None

    @property
    def text(self) -> str:
        """``cell In[5], line 3`` or ``module pipeline.py, line 10``."""
        if self.cell:
            return f"cell {self.cell}, line {self.line}"
        return f"module {os.path.basename(self.filename)}, line {self.line}"

    @property
    def execution_count(self) -> int | None:
        """The cell's execution count (5 for ``In[5]``), None for a file."""
        if self.cell and self.cell.startswith("In[") and self.cell.endswith("]") and self.cell[3:-1].isdigit():
            return int(self.cell[3:-1])
        return None


def handler_function(fn: Any) -> Any:
    """The plain function behind ``fn``: unwrapped (a harness, functools.wraps), a method's, a partial's."""
    for _ in range(10):
        fn = inspect.unwrap(fn) if callable(fn) else fn
        inner = getattr(fn, "__func__", None) or (fn.func if isinstance(fn, functools.partial) else None)
        if inner is None or inner is fn:
            break
        fn = inner
    if not hasattr(fn, "__code__") and callable(fn):
        fn = type(fn).__dict__.get("__call__", fn)  # a callable object: its class's __call__
    return fn


def location_of(fn: Any) -> Location | None:
    """Where ``fn`` (a handler's stage) was defined; None for a builtin or anything without code."""
    code = getattr(handler_function(fn), "__code__", None)
    if code is None:
        return None
    filename = code.co_filename
    return Location(filename, code.co_firstlineno, cell_of(filename))
