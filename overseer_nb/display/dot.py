"""DOT source of a graph and the colours of the display states: pure strings, no ``dot`` program.

:func:`graph_dot` is what :mod:`.render` hands to Graphviz; :data:`STATE_STYLE`
is the one table of state colours, read by the static SVG, the legend and
(as CSS variables) ``static/widget.css``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..states import DISPLAY_STATES

if TYPE_CHECKING:
    from ..graph import JobGraph

__all__ = ["STATE_STYLE", "FAST_LAYOUT_JOBS", "MAPPED_NODE", "EACH_EDGE", "graph_dot", "legend_svg"]

# Above this many jobs dot is asked for a quicker layout: ranks by the longest path
# (newrank) and capped crossing and positioning passes. For the layered 10,000-job graph
# of benchmarks/widget_bench.py that is 3.3 s instead of 33 s, with ranks as before.
FAST_LAYOUT_JOBS = 500
_FAST = ", newrank=true, mclimit=0.1, nslimit=0.1, nslimit1=0.1"

# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies),
# with a second cue for the states that need action: outline width and dashes.
STATE_STYLE: dict[str, dict[str, str]] = {
    "unstarted": {"fill": "#f2f2f2", "stroke": "#666666", "stroke-width": "1", "dash": ""},
    "started": {"fill": "#56b4e9", "stroke": "#1f5f8b", "stroke-width": "2", "dash": ""},
    "finished": {"fill": "#009e73", "stroke": "#00573f", "stroke-width": "1", "dash": ""},
    "failed": {"fill": "#d55e00", "stroke": "#000000", "stroke-width": "3", "dash": ""},
    "aborted": {"fill": "#cc79a7", "stroke": "#000000", "stroke-width": "2", "dash": "2,2"},
    "blocked": {"fill": "#f0e442", "stroke": "#6b6200", "stroke-width": "2", "dash": "5,3"},
    "retrying": {"fill": "#e69f00", "stroke": "#7a5400", "stroke-width": "2", "dash": "1,2"},
    "requeued": {"fill": "#0072b2", "stroke": "#00263b", "stroke-width": "2", "dash": "1,2"},
    # a pale finished: the result came from an earlier run (the cache), the job did not run
    "cached": {"fill": "#a8ddc9", "stroke": "#00573f", "stroke-width": "1", "dash": "4,2"},
}
assert set(STATE_STYLE) == set(DISPLAY_STATES)

# A mapped job type's node: a second outline (a stack of jobs), its name (\N) over an empty
# line that leaves room for the item count and bar (display/mapped.py); wide enough for "10000/10000".
MAPPED_NODE = 'peripheries=2, height=0.6, width=1.0, label="\\N\\n "'
# The edge from the parent a mapped type maps over: the fan-out, written on the edge.
EACH_EDGE = 'label=" each", fontsize=9, fontcolor="#555555", fontname="DejaVu Sans,Helvetica,Arial,sans-serif"'


def graph_dot(graph: JobGraph, *, fast: bool | None = None) -> str:
    """DOT source of ``graph``: parents above children, node ids ``ovjob_<i>`` in graph order.

    A mapped job type is one node (:data:`MAPPED_NODE`: a double outline, room
    for its item bar) and the edge from the parent it maps over says "each".

    ``fast``: ask for dot's quicker passes; by default for a graph of more than
    :data:`FAST_LAYOUT_JOBS` jobs.
    """
    if fast is None:
        fast = len(graph) > FAST_LAYOUT_JOBS
    quick = _FAST if fast else ""
    lines = [
        "digraph overseer {",
        f'  graph [rankdir=TB, nodesep=0.3, ranksep=0.45, bgcolor="transparent"{quick}];',
        '  node [shape=box, style="rounded,filled", fillcolor="#f2f2f2", color="#666666", '
        'fontname="DejaVu Sans,Helvetica,Arial,sans-serif", fontsize=11, height=0.35];',
        '  edge [color="#888888", arrowsize=0.6];',
    ]
    mapped = set(graph.mapped)
    for i, job in enumerate(graph):
        extra = f", {MAPPED_NODE}" if job in mapped else ""
        lines.append(f"  {_quote(job)} [id=\"ovjob_{i}\"{extra}];")
    for job in graph:
        over = graph.each_of(job)
        for parent in graph.parents(job):
            extra = f" [{EACH_EDGE}]" if parent == over else ""
            lines.append(f"  {_quote(parent)} -> {_quote(job)}{extra};")
    lines.append("}")
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def legend_svg() -> str:
    """A small SVG legend of the display states and their colours."""
    items = []
    for i, (state, style) in enumerate(STATE_STYLE.items()):
        x = 4 + i * 92
        dash = f' stroke-dasharray="{style["dash"]}"' if style["dash"] else ""
        items.append(
            f'<rect x="{x}" y="4" width="14" height="14" rx="3" fill="{style["fill"]}" '
            f'stroke="{style["stroke"]}" stroke-width="{style["stroke-width"]}"{dash}/>'
            f'<text x="{x + 19}" y="15" font-size="11" font-family="sans-serif">{state}</text>'
        )
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{8 + 92 * len(STATE_STYLE)}" height="22">{"".join(items)}</svg>'
