"""Pictures of a graph: DOT source, one Graphviz layout per graph, static coloured SVG.

Building DOT is pure; running ``dot`` happens only in :func:`layout_svg`,
once per graph (cached). State colours are applied to the laid-out SVG
without running ``dot`` again.
"""

from __future__ import annotations

import functools
import html
import re
import shutil

from ..errors import DotNotFoundError
from ..graph import JobGraph
from ..states import DISPLAY_STATES, UNSTARTED

__all__ = [
    "STATE_STYLE",
    "graph_dot",
    "layout_svg",
    "static_svg",
    "graph_mimebundle",
    "DotNotFoundError",
]

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
}
assert set(STATE_STYLE) == set(DISPLAY_STATES)


def graph_dot(graph: JobGraph) -> str:
    """DOT source of ``graph``: parents above children, one node id per job type."""
    lines = [
        "digraph overseer {",
        '  graph [rankdir=TB, nodesep=0.3, ranksep=0.45, bgcolor="transparent"];',
        '  node [shape=box, style="rounded,filled", fillcolor="#f2f2f2", color="#666666", '
        'fontname="DejaVu Sans,Helvetica,Arial,sans-serif", fontsize=11, height=0.35];',
        '  edge [color="#888888", arrowsize=0.6];',
    ]
    for i, job in enumerate(graph):
        lines.append(f"  {_quote(job)} [id=\"ovjob_{i}\"];")
    for job in graph:
        for parent in graph.parents(job):
            lines.append(f"  {_quote(parent)} -> {_quote(job)};")
    lines.append("}")
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@functools.lru_cache(maxsize=64)
def layout_svg(graph: JobGraph) -> str:
    """The graph laid out by ``dot`` as SVG; each node ``<g>`` carries ``data-job``.

    Cached per graph: a graph is laid out once. Raises :class:`DotNotFoundError`.
    """
    if shutil.which("dot") is None:
        raise DotNotFoundError()
    import graphviz

    svg = graphviz.Source(graph_dot(graph)).pipe(format="svg", encoding="utf-8")
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and doctype
    jobs = list(graph)

    def tag(match: re.Match) -> str:
        job = jobs[int(match.group(1))]
        return (
            f'<g id="ovjob_{match.group(1)}" class="node overseer-node" '
            f'data-job="{html.escape(job, quote=True)}" data-state="{UNSTARTED}"'
        )

    return re.sub(r'<g id="ovjob_(\d+)" class="node"', tag, svg)


_NODE = re.compile(r'(<g id="ovjob_\d+" class="node overseer-node" data-job="([^"]*)" data-state=")[^"]*("[^>]*>)(.*?)(</g>)', re.S)
_SHAPE = re.compile(r'<(path|polygon|ellipse)([^>]*?)fill="[^"]*"([^>]*?)stroke="[^"]*"')


def static_svg(graph: JobGraph, states: dict[str, str]) -> str:
    """The laid-out SVG with each node coloured by ``states`` (display states), inline.

    Inline attributes, not CSS, so GitHub and nbviewer show the colours.
    """
    svg = layout_svg(graph)

    def colour(match: re.Match) -> str:
        job = html.unescape(match.group(2))
        state = states.get(job, UNSTARTED)
        style = STATE_STYLE.get(state, STATE_STYLE[UNSTARTED])
        dash = f' stroke-dasharray="{style["dash"]}"' if style["dash"] else ""
        body = _SHAPE.sub(
            lambda m: f'<{m.group(1)}{m.group(2)}fill="{style["fill"]}"{m.group(3)}stroke="{style["stroke"]}" '
            f'stroke-width="{style["stroke-width"]}"{dash}',
            match.group(4),
            count=1,
        )
        return f"{match.group(1)}{state}{match.group(3)}{body}{match.group(5)}"

    return _NODE.sub(colour, svg)


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


def graph_mimebundle(graph: JobGraph, states: dict[str, str] | None = None) -> dict[str, str]:
    """What a notebook shows for a graph: coloured SVG, with a text fallback."""
    text = repr(graph)
    try:
        svg = static_svg(graph, states or {})
    except DotNotFoundError as exc:
        return {"text/plain": f"{text}\n({exc})"}
    return {"image/svg+xml": svg, "text/plain": text}
