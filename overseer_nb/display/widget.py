"""The live graph widget of a run: ``run.widget``, ``display(run)``.

The graph is laid out once and its SVG sent in the ``svg`` trait. A big graph
first gets a quick layered picture, then ``dot``'s layout once it is ready (made
on a background thread, see :mod:`.render`), which the front end colours with
the states it already has. Otherwise only display states cross the wire: the
run's loop thread hands each step's changes to the widget, which merely records
them; a flusher thread sends them at most every ``Overseer.update_interval``
seconds as one custom message ``{"kind": "states", "states": {job: state}}``
plus the header traits. The front end (``static/widget.js``) sets ``data-state`` on the
existing node ``<g>`` elements; the CSS (``static/widget.css``) colours them.

Messages from the front end: ``hello`` (a new view asks for all states),
``select`` (a job's details), ``preview`` (what a button would run again) and
``action`` (a button was clicked). Replies carry the asking view's id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets as t

from ..config import defaults
from ..errors import DotNotFoundError
from ..states import DISPLAY_STATES, FINISHED
from .details import ACTIONS, act, job_details, preview
from .dot import legend_svg
from .render import first_picture, static_svg

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["BIG_JOBS", "RunWidget", "display_run", "static_bundle", "static_picture", "pending_bundle"]

log = logging.getLogger("overseer_nb")

_STATIC = Path(__file__).parent / "static"

BIG_JOBS = 1000  # a bigger graph: no animation in the front end (static/widget.js BIG), no picture mid-run


class RunWidget(anywidget.AnyWidget):
    """A live picture of one run: graph coloured by state, progress, buttons, job panel.

    Use ``run.widget`` (one widget per run) or ``display(run)`` rather than
    creating it directly. ``states`` is the kernel's view of what the front
    ends show; ``close()`` stops listening to the run.
    """

    _esm = _STATIC / "widget.js"
    _css = _STATIC / "widget.css"

    svg = t.Unicode("", help="The laid-out graph; set once, or twice for a big graph.").tag(sync=True)
    layout = t.Unicode("", help="How `svg` was laid out: 'dot' (Graphviz) or 'layered' (quick).").tag(sync=True)
    layout_pending = t.Bool(False, help="Graphviz is laying the graph out; its picture replaces `svg`.").tag(sync=True)
    legend = t.Unicode("", help="The legend of display states (SVG).").tag(sync=True)
    run_id = t.Unicode("").tag(sync=True)
    total = t.Int(0, help="Jobs in the graph.").tag(sync=True)
    counts = t.Dict(help="Display state -> how many jobs are in it.").tag(sync=True)
    message = t.Unicode("", help="The run's message, e.g. 'no engines'.").tag(sync=True)
    running = t.Bool(False).tag(sync=True)
    elapsed = t.Float(0.0, help="Seconds since the run started, when last sent.").tag(sync=True)
    labels = t.Dict(help="Button action -> label.").tag(sync=True)

    def __init__(self, run: Any, *, interval: float | None = None, **kwargs: Any):
        self._run = run
        self._interval = max(0.02, defaults().update_interval if interval is None else interval)
        self._lock = threading.Lock()  # guards _pending and _thread; the loop thread takes only this
        self._send_lock = threading.RLock()  # one thread syncs at a time; snapshots after their deltas
        self._pending: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self._static_handles: list[Any] = []
        self._static_lock = threading.Lock()  # the saved picture is made from one thread at a time
        self._dot_error = ""
        pending = None
        try:
            svg, layout, pending = first_picture(run.graph)
        except DotNotFoundError as exc:
            svg, layout, self._dot_error = "", "", str(exc)
        # The whole first state goes in the comm's opening message, so no view is drawn
        # from defaults; a flusher started by an early step waits for the lock.
        with self._send_lock:
            # subscribe before reading the states, so no change falls between the two
            self._unsubscribe = run.subscribe(self._on_step)
            self._states: dict[str, str] = dict(run.display_states)
            super().__init__(
                svg=svg, layout=layout, layout_pending=pending is not None, legend=legend_svg(),
                run_id=run.run_id, total=len(run.graph), labels=dict(ACTIONS),
                **self._header_state(done=run.done), **kwargs,
            )
        self.on_msg(self._on_msg)
        run.settle_hooks.append(self._settle)
        if not run.done:
            with self._lock:
                self._start_flusher()
        if pending is not None:
            pending.add_done_callback(self._on_layout)

    # -- reading -------------------------------------------------------------------------
    @property
    def states(self) -> dict[str, str]:
        """Job type -> display state, as last sent to the front ends."""
        with self._send_lock:
            return dict(self._states)

    def __repr__(self) -> str:
        return f"RunWidget({self._run.summary()})"

    def _repr_mimebundle_(self, **kwargs: Any):
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle[0]["text/plain"] = self._run.summary()
        return bundle

    # -- from the run's loop thread: record and return -------------------------------------
    def _on_step(self, run: Any, step: Any) -> None:
        with self._lock:
            if self._closed:
                return
            self._pending.update(step.display)
            self._start_flusher()

    def _start_flusher(self) -> None:
        if self._thread is None:  # caller holds self._lock
            self._thread = threading.Thread(
                target=self._flush_loop, name=f"overseer-widget-{self._run.run_id}", daemon=True
            )
            self._thread.start()

    # -- the flusher thread ----------------------------------------------------------------
    def _flush_loop(self) -> None:
        while True:
            time.sleep(self._interval)
            # read "done" first: a run is done only after its last step was published
            done = self._run.done
            try:
                self.flush(done=done)
            except Exception:
                log.exception("overseer_nb: the widget of run %s could not update", self._run.run_id)
            with self._lock:
                if self._closed or (done and not self._pending):
                    self._thread = None
                    break
        if done and not self._closed:
            self._update_static()

    def flush(self, *, done: bool | None = None) -> None:
        """Send the changes recorded since the last flush (the flusher thread calls this)."""
        with self._send_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            delta = {job: s for job, s in pending.items() if self._states.get(job) != s}
            self._states.update(delta)
            with self.hold_sync():
                self._header(done=self._run.done if done is None else done, force_elapsed=bool(delta))
            if delta:
                self.send({"kind": "states", "states": delta})

    def _header_state(self, *, done: bool) -> dict[str, Any]:
        counts = Counter(self._states.values())
        return {
            "counts": {s: counts[s] for s in DISPLAY_STATES if counts[s]},
            "message": self._run.message or self._dot_error,
            "elapsed": round(self._elapsed(done), 1),
            "running": not done,
        }

    def _header(self, *, done: bool, force_elapsed: bool = True) -> None:
        state = self._header_state(done=done)
        self.counts = state["counts"]
        self.message = state["message"]
        if force_elapsed or self.running != (not done):
            self.elapsed = state["elapsed"]
        self.running = state["running"]

    def _elapsed(self, done: bool) -> float:
        run = self._run
        if not done:
            return max(0.0, time.time() - run.created)
        if run.ended is not None and run.ended >= run.created:
            return run.ended - run.created
        # a run loaded from the journal: the span of its attempts
        spans = [(a.start, a.end) for rec in run.jobs.values() for a in rec.attempts if a.start and a.end]
        return max(e for _, e in spans) - min(s for s, _ in spans) if spans else 0.0

    def _settle(self) -> None:
        """The run is done and a thread waited for it: show the final state from that thread.

        In a notebook that thread runs the waiting cell, so the update of the saved
        picture belongs to a cell that is executing: nbclient and papermill keep it.
        """
        if self._closed:
            return
        try:
            self.flush(done=True)
        except Exception:
            log.exception("overseer_nb: the widget of run %s could not update", self._run.run_id)
        self._update_static()

    def _update_static(self) -> None:
        with self._static_lock:
            if not self._static_handles:
                return
            try:
                bundle = static_bundle(self._run, self.states)
                for handle in list(self._static_handles):
                    handle.update(bundle, raw=True)
            except Exception:
                log.exception("overseer_nb: could not update the saved picture of run %s", self._run.run_id)

    # -- from the layout thread ------------------------------------------------------------------
    def _on_layout(self, future: Future[str]) -> None:
        """``dot``'s layout of a big graph is ready: it replaces the layered picture.

        Runs on the layout thread. The front ends keep every state they were sent
        and colour the new picture with them; a run already done also gets its
        saved picture redrawn.
        """
        if self._closed:
            return
        try:
            svg = future.result()
        except Exception as exc:
            why = (getattr(exc, "stderr", None) or str(exc)).strip()[:300]  # dot says why on stderr
            log.warning("overseer_nb: Graphviz could not lay out run %s: %s", self._run.run_id, why)
            svg, self._dot_error = None, f"Graphviz could not lay the graph out ({why}); the layered picture stays"
        with self._send_lock:  # hold_sync is not thread-safe: one thread syncs at a time
            with self.hold_sync():
                if svg is not None:
                    self.svg = svg
                    self.layout = "dot"
                self.layout_pending = False
                self.message = self._run.message or self._dot_error
        if svg is not None and self._run.done:
            self._update_static()

    # -- from the front end (the kernel's shell thread) -----------------------------------------
    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind, view = content.get("kind"), content.get("view", "")
        action, job = content.get("action", ""), content.get("job")
        try:
            if kind == "hello":
                with self._send_lock:
                    with self.hold_sync():
                        self._header(done=self._run.done)
                    self.send({"kind": "snapshot", "view": view, "states": dict(self._states)})
            elif kind == "select":
                self.send({"kind": "details", "view": view, "job": job, "details": job_details(self._run, job)})
            elif kind == "preview":
                jobs = preview(self._run, action, job)
                self.send({"kind": "preview", "view": view, "action": action, "job": job, "jobs": jobs})
            elif kind == "action":
                jobs = act(self._run, action, job)
                self.send({"kind": "done", "view": view, "action": action, "job": job, "jobs": jobs})
            else:
                raise ValueError(f"unknown widget message kind {kind!r}")
        except Exception as exc:
            if not isinstance(exc, (ValueError, KeyError, RuntimeError)):
                log.exception("overseer_nb: widget message %r failed", content)
            text = f"{exc.args[0]}" if isinstance(exc, KeyError) and exc.args else str(exc)
            self.send({"kind": "error", "view": view, "for": kind, "action": action, "job": job, "error": text})

    # -- ending ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop listening to the run and close the widget's views."""
        with self._lock:
            self._closed = True
        self._unsubscribe()
        if self._settle in self._run.settle_hooks:
            self._run.settle_hooks.remove(self._settle)
        super().close()


def static_picture(run: Any, states: dict[str, str] | None = None) -> str:
    """One SVG: a summary line, the graph coloured by ``states`` (inline colours), the legend.

    For saved notebooks (GitHub, nbviewer). It carries the text
    ``overseer-static-<run id>`` so a live view of the run can hide it.
    """
    import html
    import re

    states = run.display_states if states is None else states
    graph = static_svg(run.graph, states)
    size = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"\s*viewBox="([^"]*)"', graph)
    gw, gh = (float(size.group(1)) * 4 / 3, float(size.group(2)) * 4 / 3) if size else (400.0, 300.0)
    view_box = size.group(3) if size else f"0 0 {gw} {gh}"
    inner = graph[graph.index(">", graph.index("<svg")) + 1: graph.rindex("</svg>")]
    legend = legend_svg()
    lw = float(re.search(r'width="([\d.]+)"', legend).group(1))
    legend_inner = legend[legend.index(">") + 1: legend.rindex("</svg>")]
    counts = Counter(states.values())
    summary = ", ".join(f"{counts[s]} {s}" for s in DISPLAY_STATES if counts[s])
    done = sum(1 for s in states.values() if s == FINISHED)
    title = html.escape(f"Run {run.run_id}: {done}/{len(run.graph)} finished ({summary})")
    width, height = max(gw, lw) + 8, gh + 60
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'class="overseer-static" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">'
        f"<desc>overseer-static-{html.escape(run.run_id)}</desc>"
        f'<text x="4" y="15" font-size="12" font-family="sans-serif">{title}</text>'
        f'<svg x="4" y="24" width="{gw:.1f}" height="{gh:.1f}" viewBox="{view_box}">{inner}</svg>'
        f'<g transform="translate(0,{gh + 30:.1f})">{legend_inner}</g></svg>'
    )


def static_bundle(run: Any, states: dict[str, str] | None = None) -> dict[str, str]:
    """The saved picture's mimebundle: SVG of the last state, summary text."""
    try:
        return {"image/svg+xml": static_picture(run, states), "text/plain": run.summary()}
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
    bundle = pending_bundle(run) if placeholder else static_bundle(run, widget.states)
    handle = display(bundle, raw=True, display_id=True)
    if handle is not None:
        widget._static_handles.append(handle)
        if placeholder and run.done:  # it ended while this was shown
            widget._update_static()
