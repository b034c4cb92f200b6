"""Cells by their prompt: the code namer that turns an IPython cell's file name into ``In[5]``.

IPython compiles each cell under a file name of its own (ipykernel: a file
in a temporary folder named after the code's hash), keeps the cell's source
in ``linecache`` under that name and maps the name to the cell's execution
count (``shell.compile.format_code_name``). Tracebacks and the job panel
ask :func:`cell_name` through :mod:`overseer_nb.tracebacks`. Light: it
imports nothing, and outside a running IPython it names nothing.
"""

from __future__ import annotations

import sys

from ..tracebacks import add_namer, remove_namer

__all__ = ["cell_name", "name_cells"]


def cell_name(filename: str) -> str | None:
    """``In[5]`` if ``filename`` is the code of a cell of the running IPython shell, else None."""
    ipython = sys.modules.get("IPython")  # never imported here: without it there are no cells
    shell = ipython.get_ipython() if ipython is not None else None
    compiler = getattr(shell, "compile", None)
    if compiler is None or not hasattr(compiler, "format_code_name"):
        return None
    found = compiler.format_code_name(filename)
    return found[1] if found else None


def name_cells(on: bool = True) -> None:
    """Name cells ``In[n]`` in tracebacks and the job panel (``on``), or stop."""
    (add_namer if on else remove_namer)(cell_name)
