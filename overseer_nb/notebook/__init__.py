"""The notebook side: the IPython magics, graph cells, handler binding, named graphs and runs."""

from .magics import load, unload

__all__ = ["load", "unload"]
