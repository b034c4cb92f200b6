"""The notebook side: the IPython magics, graph cells, handler binding, named graphs and runs.

``magics`` parses the ``%overseer_*`` lines; ``session`` (:class:`Notebook`) does
what they ask; ``cells`` reads a graph cell; ``binding`` binds a cell's functions;
``naming`` names cells ``In[5]`` in tracebacks. ``import overseer_nb`` imports only
``naming`` (it imports nothing); the rest, IPython with it, when ``%load_ext
overseer_nb`` runs or one of its names is asked for.
"""

from typing import Any

from .naming import cell_name, name_cells

__all__ = ["load", "unload", "Notebook", "cell_name", "name_cells"]


def __getattr__(name: str) -> Any:
    if name in ("load", "unload"):
        from . import magics

        return getattr(magics, name)
    if name == "Notebook":
        from .session import Notebook

        return Notebook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
