"""Running Graphviz: one ``dot`` layout per graph, the static coloured SVG, a graph's mimebundle.

The only module of the package that runs the ``dot`` program, in
:func:`layout_svg`, once per graph (cached). The DOT source and the state
colours come from :mod:`.dot`; colours are applied to the laid-out SVG
without running ``dot`` again.
"""

from __future__ import annotations

import functools
import html
import re
import shutil
from typing import TYPE_CHECKING

from ..errors import DotNotFoundError
from ..states import UNSTARTED
from .dot import STATE_STYLE, graph_dot

if TYPE_CHECKING:
    from ..graph import JobGraph

__all__ = ["layout_svg", "static_svg", "graph_mimebundle"]


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
    Raises :class:`DotNotFoundError`.
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


def graph_mimebundle(graph: JobGraph, states: dict[str, str] | None = None) -> dict[str, str]:
    """What a notebook shows for a graph: coloured SVG, with a text fallback."""
    text = repr(graph)
    try:
        svg = static_svg(graph, states or {})
    except DotNotFoundError as exc:
        return {"text/plain": f"{text}\n({exc})"}
    return {"image/svg+xml": svg, "text/plain": text}
