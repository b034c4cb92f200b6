"""Pictures and text of a run: DOT and SVG, the live widget, the text log, tables.

``dot`` holds the pure DOT source and the state colours, ``layered`` the quick
picture of a big graph (pure Python), ``mapped`` the count and bar of a mapped
job type's node (pure); ``snapshots`` a run's frozen picture (``run.snapshot()``);
``diff`` what differs between two runs (``ov.diff``); ``render`` runs the Graphviz ``dot`` program, in the
background for a big graph. The widget names (:class:`RunWidget`, ``display_run``,
``static_bundle``, ``static_picture``) are loaded on first use, so widget
packages (anywidget, ipywidgets) are imported only when a widget is made.
"""

from typing import Any

from ..errors import DotNotFoundError
from .diff import CODE_UNKNOWN, CodeDiff, JobDiff, RunDiff, run_diff
from .dot import STATE_STYLE, graph_dot, legend_svg
from .layered import layered_svg
from .render import graph_mimebundle, layout_svg, picture_svg, static_svg
from .snapshots import Snapshot, snapshot
from .tables import JobRow, Table, cluster_text, retry_text, status_table
from .textlog import log_step

_WIDGET_NAMES = ("RunWidget", "display_run", "static_bundle", "static_picture")

__all__ = [
    "STATE_STYLE",
    "DotNotFoundError",
    "graph_dot",
    "legend_svg",
    "graph_mimebundle",
    "layout_svg",
    "layered_svg",
    "picture_svg",
    "static_svg",
    "Table",
    "JobRow",
    "status_table",
    "retry_text",
    "cluster_text",
    "log_step",
    "Snapshot",
    "snapshot",
    "RunDiff",
    "JobDiff",
    "CodeDiff",
    "CODE_UNKNOWN",
    "run_diff",
    *_WIDGET_NAMES,
]


def __getattr__(name: str) -> Any:
    # PEP 562: `from overseer_nb.display import RunWidget` imports anywidget only then
    if name in _WIDGET_NAMES:
        from . import widget

        return getattr(widget, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
