"""How a mapped job type is drawn: one node with a double outline, its item count and a bar of item states.

Pure strings, no ``dot`` program. The DOT source (:mod:`.dot`) makes a mapped
type's node taller and wider, with a second outline, and labels the edge from
the parent it maps over "each". Once a picture is laid out (by ``dot``
or :mod:`.layered`), :func:`overlay` adds inside the node, under its name, a
``<text class="ov-items-count">`` and an empty ``<rect class="ov-items-track">``.
The front end (``static/widget.js``) fills them live: ``done/total`` and one
``<rect class="ov-seg" data-state=...>`` per state inside the track (:data:`INSET`
from its outline), as wide as its share of the items (:func:`segments`, mirrored there); :func:`fill` does the same with inline
colours for the saved picture.
"""

from __future__ import annotations

import html
import re

from ..states import ABORTED, BLOCKED, CACHED, FAILED, FINISHED, REQUEUED, RETRYING, STARTED, UNSTARTED
from .dot import STATE_STYLE

__all__ = [
    "BAR_STATES", "INSET", "MIN_SEGMENT", "box_of", "overlay", "segments", "count_text", "fill",
]

# Left to right in the bar: what is done, what went wrong, what runs, what waits.
BAR_STATES = (FINISHED, CACHED, FAILED, ABORTED, STARTED, RETRYING, REQUEUED, BLOCKED, UNSTARTED)
MIN_SEGMENT = 1.5  # pt: one failed item of 10,000 still shows
_BAR_HEIGHT = 5.0
INSET = 1.0  # pt of white between the track's outline and the segments, so a bar shows on any fill
_BAR_BOTTOM = 5.5  # from the box's bottom edge to the bar's
_COUNT_SIZE = 8.5
_PAD = 6.0

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_FIRST_SHAPE = re.compile(r'<(?:path|polygon)[^>]*?\s(?:d|points)="([^"]*)"')


def box_of(body: str) -> tuple[float, float, float, float] | None:
    """The box ``(x0, y0, x1, y1)`` of the first outline in a node's SVG (dot's inner periphery).

    Read from the points of a ``<polygon>`` or the coordinates of dot's
    ``<path>`` (a rounded box: its control points stay inside the box).
    """
    found = _FIRST_SHAPE.search(body)
    if found is None:
        return None
    values = [float(v) for v in _NUMBER.findall(found.group(1))]
    xs, ys = values[0::2], values[1::2]
    if not xs or not ys:
        return None
    return min(xs), min(ys), max(xs), max(ys)


def overlay(box: tuple[float, float, float, float]) -> str:
    """The count text and the empty bar drawn inside a mapped node whose box is ``box``."""
    x0, _y0, x1, y1 = box
    bar_y = y1 - _BAR_BOTTOM - _BAR_HEIGHT
    return (
        f'<text class="ov-items-count" x="{(x0 + x1) / 2:.2f}" y="{bar_y - 2.5:.2f}" text-anchor="middle" '
        f'font-family="DejaVu Sans,Helvetica,Arial,sans-serif" font-size="{_COUNT_SIZE}"></text>'
        f'<rect class="ov-items-track" x="{x0 + _PAD:.2f}" y="{bar_y:.2f}" width="{max(1.0, x1 - x0 - 2 * _PAD):.2f}" '
        f'height="{_BAR_HEIGHT}" rx="1.5" fill="#ffffff" stroke="#333333" stroke-width="0.6"/>'
    )


def segments(counts: dict[str, int], x: float, width: float) -> list[tuple[str, float, float]]:
    """``(state, x, width)`` of the bar's segments: one per state with items, in :data:`BAR_STATES` order.

    Each is as wide as its share of the items, but at least :data:`MIN_SEGMENT`
    (taken from the widest), so that one failed item among thousands shows.
    """
    total = sum(counts.get(s, 0) for s in BAR_STATES)
    if total <= 0 or width <= 0:
        return []
    widths = {s: width * counts[s] / total for s in BAR_STATES if counts.get(s, 0) > 0}
    small = {s: MIN_SEGMENT for s, w in widths.items() if w < MIN_SEGMENT}
    if small and len(small) < len(widths):
        widest = max(widths, key=widths.__getitem__)
        widths[widest] -= sum(MIN_SEGMENT - widths[s] for s in small)
        widths.update(small)
    found, at = [], x
    for state in BAR_STATES:
        if state in widths:
            w = max(0.0, widths[state])
            found.append((state, at, w))
            at += w
    return found


def count_text(counts: dict[str, int] | None) -> str:
    """``done/total`` of a mapped type's items ("" while they are not known)."""
    if counts is None:
        return ""
    return f"{counts.get(FINISHED, 0) + counts.get(CACHED, 0)}/{sum(counts.values())}"  # reused ones are done too


_TRACK = re.compile(r'<rect class="ov-items-track" x="([^"]*)" y="([^"]*)" width="([^"]*)" height="([^"]*)"[^>]*/>')
_COUNT = re.compile(r'(<text class="ov-items-count"[^>]*>)[^<]*(</text>)')


def fill(body: str, counts: dict[str, int] | None) -> str:
    """A mapped node's SVG ``body`` with its count and bar drawn for ``counts`` (state -> items), inline colours.

    For the saved picture; ``counts`` None (items not known yet) leaves them empty.
    """
    body = _COUNT.sub(lambda m: f"{m.group(1)}{html.escape(count_text(counts))}{m.group(2)}", body, count=1)
    track = _TRACK.search(body)
    if track is None or not counts:
        return body
    x, y, width, height = (float(v) for v in track.groups())
    rects = "".join(
        f'<rect class="ov-seg" data-state="{state}" x="{sx:.2f}" y="{y + INSET:.2f}" width="{sw:.2f}" '
        f'height="{height - 2 * INSET:g}" fill="{STATE_STYLE[state]["fill"]}"/>'
        for state, sx, sw in segments(counts, x + INSET, width - 2 * INSET)
    )
    return body[: track.end()] + rects + body[track.end():]
