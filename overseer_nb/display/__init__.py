"""Pictures and text of a run: DOT and SVG, the live widget, the text log, tables.

``dot`` holds the pure DOT source and the state colours; ``render`` runs the
Graphviz ``dot`` program. Widget packages (anywidget, ipywidgets) are imported
only when a widget is made (``overseer_nb.display.widget``).
"""

from ..errors import DotNotFoundError
from .dot import STATE_STYLE, graph_dot, legend_svg
from .render import graph_mimebundle, layout_svg, static_svg
from .tables import JobRow, Table, cluster_text, retry_text, status_table
from .textlog import log_step

__all__ = [
    "STATE_STYLE",
    "DotNotFoundError",
    "graph_dot",
    "legend_svg",
    "graph_mimebundle",
    "layout_svg",
    "static_svg",
    "Table",
    "JobRow",
    "status_table",
    "retry_text",
    "cluster_text",
    "log_step",
]
