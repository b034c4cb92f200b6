"""Running Graphviz: the layouts of a graph, the static coloured SVG, a graph's mimebundle.

The only module of the package that runs the ``dot`` program (:func:`run_dot`).
A graph is laid out by ``dot`` once; the layout is kept for the last 64 graphs.
How long that takes grows fast with the graph (seconds for 10,000 jobs), so only
small graphs are laid out where they are asked for:

- up to :data:`INLINE_JOBS` jobs, ``dot`` runs in the calling thread (well under
  a second), as :func:`layout_svg` always does;
- a bigger graph is drawn at once by :func:`~.layered.layered_svg` (pure Python,
  0.1 s for 10,000 jobs) while ``dot`` runs on a background thread
  (:func:`full_layout`); its layout replaces the quick picture when it is ready;
- a graph ``dot`` would not draw usefully keeps the quick picture: more than
  :data:`DOT_MAX_JOBS` jobs, or a depth of more than :data:`DOT_MAX_WIDTH` jobs,
  which ``dot`` puts on one row hundreds of nodes wide.

Colours are applied to a laid-out SVG without running ``dot`` again.
"""

from __future__ import annotations

import concurrent.futures
import functools
import html
import re
import shutil
import subprocess
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from ..errors import DotNotFoundError
from ..states import UNSTARTED
from .dot import STATE_STYLE, graph_dot
from .layered import layered_svg, widest_depth
from .mapped import box_of, fill, overlay

if TYPE_CHECKING:
    from ..graph import JobGraph

__all__ = [
    "INLINE_JOBS",
    "DOT_MAX_JOBS",
    "DOT_MAX_WIDTH",
    "dot_suits",
    "run_dot",
    "layout_svg",
    "full_layout",
    "quick_svg",
    "picture_svg",
    "first_picture",
    "clear_layouts",
    "static_svg",
    "graph_mimebundle",
]

INLINE_JOBS = 500  # dot in the calling thread: about 0.1 s
DOT_MAX_JOBS = 20_000
DOT_MAX_WIDTH = 500
_WAIT_JOBS = 2000  # up to this many jobs, a first picture waits a little for dot
_FIRST_WAIT = 0.3  # seconds
_KEEP_GRAPHS = 64
_KEEP_CHARS = 200_000_000  # at most about this much SVG text is kept


def dot_suits(graph: JobGraph) -> bool:
    """Whether ``dot`` lays ``graph`` out (else the layered picture is the only one).

    Graphs of up to :data:`INLINE_JOBS` jobs always; bigger ones of up to
    :data:`DOT_MAX_JOBS` jobs whose widest depth holds at most :data:`DOT_MAX_WIDTH`.
    """
    n = len(graph)
    return n <= INLINE_JOBS or (n <= DOT_MAX_JOBS and widest_depth(graph) <= DOT_MAX_WIDTH)


def _need_dot() -> None:
    if shutil.which("dot") is None:
        raise DotNotFoundError()


def run_dot(graph: JobGraph, *, low_priority: bool = False) -> str:
    """One run of ``dot`` on ``graph``, not cached: SVG whose node ``<g>`` carry ``data-job``.

    ``low_priority``: run it under ``nice`` where there is one, so that a layout in
    the background leaves the CPU to the kernel and the browser.
    Raises :class:`DotNotFoundError`, or :class:`subprocess.CalledProcessError` when ``dot`` fails.
    """
    _need_dot()
    command = ["dot", "-Tsvg"]
    if low_priority and shutil.which("nice"):
        command = ["nice", "-n", "10", *command]
    done = subprocess.run(command, input=graph_dot(graph).encode(), capture_output=True, check=False)
    if done.returncode:
        raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr.decode(errors="replace"))
    svg = done.stdout.decode("utf-8")
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and doctype
    svg = re.sub(r"<!--.*?-->\n", "", svg, flags=re.S)  # a comment per node and edge
    jobs = list(graph)
    mapped = set(graph.mapped)

    def tag(match: re.Match) -> str:
        job = jobs[int(match.group(1))]
        kind = " overseer-mapped" if job in mapped else ""
        return (
            f'<g id="ovjob_{match.group(1)}" class="node overseer-node{kind}" '
            f'data-job="{html.escape(job, quote=True)}" data-state="{UNSTARTED}"'
        )

    svg = re.sub(r'<g id="ovjob_(\d+)" class="node"', tag, svg)
    return _MAPPED.sub(_add_overlay, svg) if mapped else svg


_MAPPED = re.compile(r'(<g id="ovjob_\d+" class="node overseer-node overseer-mapped"[^>]*>)(.*?)(</g>)', re.S)


def _add_overlay(match: re.Match) -> str:
    """A mapped node of dot's SVG gets its (empty) item count and bar, inside its inner outline."""
    box = box_of(match.group(2))
    body = match.group(2) if box is None else match.group(2).rstrip("\n") + overlay(box) + "\n"
    return f"{match.group(1)}{body}{match.group(3)}"


class _Layouts:
    """The ``dot`` layouts made so far and those being made, by graph (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: OrderedDict[JobGraph, str] = OrderedDict()
        self._chars = 0
        self._running: dict[JobGraph, concurrent.futures.Future[str]] = {}

    def peek(self, graph: JobGraph) -> str | None:
        with self._lock:
            svg = self._done.get(graph)
            if svg is not None:
                self._done.move_to_end(graph)
            return svg

    def running(self, graph: JobGraph) -> concurrent.futures.Future[str] | None:
        with self._lock:
            return self._running.get(graph)

    def keep(self, graph: JobGraph, svg: str) -> None:
        with self._lock:
            if graph not in self._done:
                self._done[graph] = svg
                self._chars += len(svg)
            while len(self._done) > 1 and (len(self._done) > _KEEP_GRAPHS or self._chars > _KEEP_CHARS):
                _, old = self._done.popitem(last=False)
                self._chars -= len(old)

    def start(self, graph: JobGraph) -> concurrent.futures.Future[str]:
        with self._lock:
            future = self._running.get(graph)
            if future is not None:
                return future
            future = self._running[graph] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        threading.Thread(target=self._work, args=(graph, future), name="overseer-layout", daemon=True).start()
        return future

    def _work(self, graph: JobGraph, future: concurrent.futures.Future[str]) -> None:
        try:
            svg = run_dot(graph, low_priority=True)
        except BaseException as exc:
            with self._lock:
                self._running.pop(graph, None)
            future.set_exception(exc)
            return
        self.keep(graph, svg)  # before the callbacks run: they may ask for it
        with self._lock:
            self._running.pop(graph, None)
        future.set_result(svg)

    def clear(self) -> None:
        with self._lock:
            self._done.clear()
            self._chars = 0


_LAYOUTS = _Layouts()


def layout_svg(graph: JobGraph) -> str:
    """The graph laid out by ``dot`` as SVG; each node ``<g>`` carries ``data-job``.

    Laid out once per graph (kept for the last 64), in the calling thread unless a
    background layout of it is under way, which it waits for. For a big graph,
    :func:`first_picture` does not wait. Raises :class:`DotNotFoundError`.
    """
    svg = _LAYOUTS.peek(graph)
    if svg is not None:
        return svg
    future = _LAYOUTS.running(graph)
    if future is not None:
        return future.result()
    svg = run_dot(graph)
    _LAYOUTS.keep(graph, svg)
    return svg


def full_layout(graph: JobGraph) -> concurrent.futures.Future[str]:
    """``dot``'s layout of ``graph``, made on a background thread (one per graph at a time).

    The future's callbacks run on that thread. A graph laid out before gets a
    future that is already done. Raises :class:`DotNotFoundError` at once.
    """
    _need_dot()
    svg = _LAYOUTS.peek(graph)
    if svg is not None:
        done: concurrent.futures.Future[str] = concurrent.futures.Future()
        done.set_result(svg)
        return done
    return _LAYOUTS.start(graph)


@functools.lru_cache(maxsize=8)
def quick_svg(graph: JobGraph) -> str:
    """The layered picture of ``graph`` (:func:`~.layered.layered_svg`), cached per graph."""
    return layered_svg(graph)


def picture_svg(graph: JobGraph) -> str:
    """The best picture of ``graph`` to be had without waiting for a background layout.

    ``dot``'s layout when it exists or the graph is small (:data:`INLINE_JOBS`), else the
    layered picture. Raises :class:`DotNotFoundError`, as every picture does without ``dot``.
    """
    _need_dot()
    svg = _LAYOUTS.peek(graph)
    if svg is not None:
        return svg
    if len(graph) <= INLINE_JOBS:
        return layout_svg(graph)
    return quick_svg(graph)


def first_picture(graph: JobGraph) -> tuple[str, str, concurrent.futures.Future[str] | None]:
    """What a new view shows first: ``(svg, layout, pending)``.

    ``layout`` is ``"dot"`` or ``"layered"``; ``pending`` is the future of ``dot``'s
    layout that will replace a layered picture, or None. Graphs of up to 2,000 jobs
    wait up to 0.3 s for ``dot``; bigger ones get the layered picture at once.
    Raises :class:`DotNotFoundError`.
    """
    _need_dot()
    svg = _LAYOUTS.peek(graph)
    if svg is not None:
        return svg, "dot", None
    if len(graph) <= INLINE_JOBS:
        return layout_svg(graph), "dot", None
    if not dot_suits(graph):
        return quick_svg(graph), "layered", None
    future = full_layout(graph)
    if len(graph) <= _WAIT_JOBS:
        try:
            return future.result(timeout=_FIRST_WAIT), "dot", None
        except Exception:  # not yet, or dot failed: the future says which to its callbacks
            pass
    return quick_svg(graph), "layered", future


def clear_layouts() -> None:
    """Forget every layout made so far (for benchmarks and tests); running ones finish."""
    _LAYOUTS.clear()
    quick_svg.cache_clear()


_NODE = re.compile(
    r'(<g id="ovjob_\d+" class="node overseer-node( overseer-mapped)?" data-job="([^"]*)" data-state=")[^"]*("[^>]*>)(.*?)(</g>)',
    re.S,
)
_SHAPE = re.compile(r'<(path|polygon|ellipse)([^>]*?)fill="[^"]*"([^>]*?)stroke="[^"]*"')
_OUTER = re.compile(r'<(path|polygon)( fill="none")([^>]*?)stroke="[^"]*"')  # a mapped node's second outline


def static_svg(
    graph: JobGraph, states: dict[str, str], items: dict[str, dict[str, int] | None] | None = None
) -> str:
    """The picture of ``graph`` (:func:`picture_svg`) with each node coloured by ``states``, inline.

    Inline attributes, not CSS, so GitHub and nbviewer show the colours.
    ``items``: mapped job type -> its items' display states counted (None while
    not known): its node shows ``done/total`` and the bar. Raises :class:`DotNotFoundError`.
    """
    svg = picture_svg(graph)
    items = items or {}

    def colour(match: re.Match) -> str:
        job = html.unescape(match.group(3))
        state = states.get(job, UNSTARTED)
        style = STATE_STYLE.get(state, STATE_STYLE[UNSTARTED])
        dash = f' stroke-dasharray="{style["dash"]}"' if style["dash"] else ""
        body = _SHAPE.sub(
            lambda m: f'<{m.group(1)}{m.group(2)}fill="{style["fill"]}"{m.group(3)}stroke="{style["stroke"]}" '
            f'stroke-width="{style["stroke-width"]}"{dash}',
            match.group(5),
            count=1,
        )
        if match.group(2):  # mapped: the second outline too, then the count and the bar
            body = _OUTER.sub(  # thin: the thick outline of a failed job is the inner one
                lambda m: f'<{m.group(1)}{m.group(2)}{m.group(3)}stroke="{style["stroke"]}"{dash}', body, count=1
            )
            counts = items.get(job)
            body = fill(body, counts)
            if counts is not None:
                return f'{match.group(1)}{state}" data-items="{sum(counts.values())}{match.group(4)}{body}{match.group(6)}'
        return f"{match.group(1)}{state}{match.group(4)}{body}{match.group(6)}"

    return _NODE.sub(colour, svg)


def graph_mimebundle(graph: JobGraph, states: dict[str, str] | None = None) -> dict[str, str]:
    """What a notebook shows for a graph: coloured SVG, with a text fallback."""
    text = repr(graph)
    try:
        svg = static_svg(graph, states or {})
    except DotNotFoundError as exc:
        return {"text/plain": f"{text}\n({exc})"}
    return {"image/svg+xml": svg, "text/plain": text}
