"""What a notebook keeps of a run when it is saved: a static coloured picture, and how a run is displayed.

:func:`display_run` puts the live widget and, beside it, a static SVG picture
(:func:`static_picture`) that GitHub, nbviewer and a notebook opened without a
kernel show; the widget's front end hides it while a live view is on the page.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import DotNotFoundError
from ..states import DISPLAY_STATES, FINISHED
from .dot import legend_svg
from .render import static_svg
from .tally import item_counts, job_counts

__all__ = ["BIG_JOBS", "static_picture", "static_bundle", "pending_bundle", "display_run"]

log = logging.getLogger("overseer_nb")

BIG_JOBS = 1000  # a bigger graph: no animation in the front end (static/widget.js BIG), no picture mid-run


def static_picture(
    run: Any, states: dict[str, str] | None = None, items: dict[str, dict[str, int] | None] | None = None,
    *, kind: str = "static", heading: str = "",
) -> str:
    """One SVG: a summary line, the graph coloured by ``states`` (inline colours), the legend.

    For saved notebooks (GitHub, nbviewer). ``items``: mapped type -> its items'
    display states counted (read from ``run`` when not given); a mapped node
    shows ``done/total`` and its bar, and the summary counts items as jobs. It
    carries the text ``overseer-static-<run id>`` so a live view of the run can hide it.
    kind: ``"snapshot"`` for :meth:`Run.snapshot`'s picture, which carries
    ``overseer-snapshot-<run id>`` instead, so a live view leaves it on the page;
    heading: the words before the summary (default ``Run <run id>``).
    """
    import html
    import re

    states = run.display_states if states is None else states
    items = item_counts(run) if items is None else items
    graph = static_svg(run.graph, states, items)
    size = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"\s*viewBox="([^"]*)"', graph)
    gw, gh = (float(size.group(1)) * 4 / 3, float(size.group(2)) * 4 / 3) if size else (400.0, 300.0)
    view_box = size.group(3) if size else f"0 0 {gw} {gh}"
    inner = graph[graph.index(">", graph.index("<svg")) + 1: graph.rindex("</svg>")]
    legend = legend_svg()
    found = re.search(r'width="([\d.]+)"', legend)
    lw = float(found.group(1)) if found else 0.0
    legend_inner = legend[legend.index(">") + 1: legend.rindex("</svg>")]
    counts = job_counts(states, items)
    summary = ", ".join(f"{counts[s]} {s}" for s in DISPLAY_STATES if counts.get(s))
    heading = heading or f"Run {run.run_id}"
    title = html.escape(f"{heading}: {counts.get(FINISHED, 0)}/{sum(counts.values())} finished ({summary})")
    width, height = max(gw, lw) + 8, gh + 60
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'class="overseer-{kind}" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">'
        f"<desc>overseer-{kind}-{html.escape(run.run_id)}</desc>"
        f'<text x="4" y="15" font-size="12" font-family="sans-serif">{title}</text>'
        f'<svg x="4" y="24" width="{gw:.1f}" height="{gh:.1f}" viewBox="{view_box}">{inner}</svg>'
        f'<g transform="translate(0,{gh + 30:.1f})">{legend_inner}</g></svg>'
    )


def static_bundle(
    run: Any, states: dict[str, str] | None = None, items: dict[str, dict[str, int] | None] | None = None
) -> dict[str, str]:
    """The saved picture's mimebundle: SVG of the last state (:func:`static_picture`), summary text."""
    try:
        return {"image/svg+xml": static_picture(run, states, items), "text/plain": run.summary()}
    except DotNotFoundError:
        return {"text/plain": run.summary()}


def pending_bundle(run: Any) -> dict[str, str]:
    """What stands in for the saved picture of a big run still going on: one line of SVG.

    It carries ``overseer-static-<run id>`` as :func:`static_picture` does, so a
    live view hides it; the picture replaces it when the run ends.
    """
    import html

    line = html.escape(f"Run {run.run_id}: {len(run.graph):,} jobs; the picture is saved when the run ends.")
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" class="overseer-static" width="640" height="22" viewBox="0 0 640 22">'
        f"<desc>overseer-static-{html.escape(run.run_id)}</desc>"
        f'<text x="4" y="15" font-size="12" font-family="sans-serif">{line}</text></svg>'
    )
    return {"image/svg+xml": svg, "text/plain": run.summary()}


def _has_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def display_run(run: Any) -> None:
    """Show ``run`` in a notebook: its live widget, then its static picture (kept up to date).

    The static picture is what a saved notebook shows without a kernel; while
    the widget is live, its front end hides the picture. Outside a kernel
    (a terminal, a script) only the summary line is shown.
    """
    from IPython.display import display

    if not _has_kernel():
        display({"text/plain": run.summary()}, raw=True)
        return
    try:
        widget = run.widget
    except ImportError as exc:  # anywidget/ipywidgets missing: the picture still informs
        log.warning("overseer_nb: no live widget (%s); pip install anywidget ipywidgets", exc)
        display(static_bundle(run), raw=True)
        return
    display(widget)
    # A big graph's picture is megabytes: while the run goes on, a line stands in for it
    # (the front end would parse it only to hide it); the run's end draws the picture.
    placeholder = not run.done and len(run.graph) > BIG_JOBS
    bundle = pending_bundle(run) if placeholder else static_bundle(run, widget.states, widget.items)
    handle = display(bundle, raw=True, display_id=True)
    if handle is not None:
        widget.keep_picture(handle, drawn=not placeholder)
