"""The notebook side: the IPython magics, graph cells, handler binding, named graphs and runs.

``magics`` parses the ``%overseer_*`` lines; ``session`` (:class:`Notebook`) does
what they ask; ``cells`` reads a graph cell; ``binding`` binds a cell's functions.
Imported when ``%load_ext overseer_nb`` runs, not by ``import overseer_nb``.
"""

from .magics import load, unload
from .session import Notebook

__all__ = ["load", "unload", "Notebook"]
