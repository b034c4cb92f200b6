"""Pictures and text of a run: DOT and SVG, the live widget, the text log, tables.

Widget packages (anywidget, ipywidgets) are imported only when a widget is made.
"""

from .render import STATE_STYLE, DotNotFoundError, graph_dot, graph_mimebundle, layout_svg, static_svg
from .tables import Table, cluster_text, retry_text, status_table
from .textlog import log_step

__all__ = [
    "STATE_STYLE",
    "DotNotFoundError",
    "graph_dot",
    "graph_mimebundle",
    "layout_svg",
    "static_svg",
    "Table",
    "status_table",
    "retry_text",
    "cluster_text",
    "log_step",
]
