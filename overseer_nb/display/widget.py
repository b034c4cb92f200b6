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

A mapped job type is one node. Its items' changes never cross the wire one by
one: the widget counts them per type (:class:`~.tally.ItemTally`) and the same
message carries, for each type whose counts changed, ``"items": {type: {state:
count}}``; the front end draws ``done/total`` and the bar in the node.

Messages from the front end: ``hello`` (a new view asks for all states),
``select`` (a job's details), ``why`` (the pointer rests on an unstarted node:
what it waits for, one line), ``preview`` (what a button would run again) and
``action`` (a button was clicked). Replies carry the asking view's id.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets as t

from ..config import defaults
from ..errors import DotNotFoundError
from ..states import DISPLAY_STATES
from .details import ACTIONS, act, hover_why, job_details, preview, reply_jobs
from .dot import legend_svg
from .render import first_picture
from .saved import BIG_JOBS, display_run, pending_bundle, static_bundle, static_picture
from .tally import ItemTally, is_item

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["BIG_JOBS", "RunWidget", "display_run", "static_bundle", "static_picture", "pending_bundle"]

log = logging.getLogger("overseer_nb")

_STATIC = Path(__file__).parent / "static"


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
    nodes = t.Int(0, help="Nodes of the picture: the graph's job types.").tag(sync=True)
    mapped = t.List(t.Unicode(), help="The mapped job types (one node each, with an item bar).").tag(sync=True)
    total = t.Int(0, help="Jobs of the run: each item of a mapped type is one (as run.counts() counts).").tag(sync=True)
    counts = t.Dict(help="Display state -> how many jobs (items counted one by one) are in it.").tag(sync=True)
    message = t.Unicode("", help="The run's message, e.g. 'no engines'.").tag(sync=True)
    running = t.Bool(False).tag(sync=True)
    elapsed = t.Float(0.0, help="Seconds since the run started, when last sent.").tag(sync=True)
    labels = t.Dict(help="Button action -> label.").tag(sync=True)

    def __init__(self, run: Any, *, interval: float | None = None, **kwargs: Any):
        self._run = run
        self._interval = max(0.02, defaults().update_interval if interval is None else interval)
        self._lock = threading.Lock()  # guards _pending and _thread; the loop thread takes only this
        self._send_lock = threading.RLock()  # one thread syncs at a time; snapshots after their deltas
        self._pending: dict[str, str] = {}  # job type or item -> display state, since the last flush
        self._resync: set[str] = set()  # mapped types whose items must be read anew
        self._tally = ItemTally(run.graph.mapped)  # guarded by _send_lock
        self._machine = run.machine  # a refused journal write replaces it: then every count is read anew
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
            for job in run.graph.mapped:
                self._tally.resync(run, job)
            super().__init__(
                svg=svg, layout=layout, layout_pending=pending is not None, legend=legend_svg(),
                run_id=run.run_id, nodes=len(run.graph), mapped=list(run.graph.mapped), labels=dict(ACTIONS),
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

    @property
    def items(self) -> dict[str, dict[str, int] | None]:
        """Mapped job type -> its items' display states counted (None while not known), as last sent."""
        with self._send_lock:
            return self._tally.all_counts()

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
            if step.removed or step.expanded:
                self._reshaped(step)
            else:
                self._pending.update(step.display)
            self._start_flusher()

    def _reshaped(self, step: Any) -> None:
        """Items became known or were forgotten (rare): their types are read anew at the next flush.

        What was recorded of those types' items before, and this step's changes
        of them, are dropped: the flush reads the items as they are then.
        """
        types = {key.rsplit("[", 1)[0] for key in step.removed} | set(step.expanded)
        self._resync |= types
        pending = self._pending
        for key in [k for k in pending if is_item(k) and k.rsplit("[", 1)[0] in types]:
            del pending[key]
        pending.update(
            (k, s) for k, s in step.display.items() if not (is_item(k) and k.rsplit("[", 1)[0] in types)
        )

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
                if self._closed or (done and not self._pending and not self._resync):
                    self._thread = None
                    break
        if done and not self._closed:
            self._update_static()

    def flush(self, *, done: bool | None = None) -> None:
        """Send the changes recorded since the last flush (the flusher thread calls this).

        One message at most: the job types whose display state changed, and the
        item counts of the mapped types whose counts changed.
        """
        with self._send_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                resync, self._resync = self._resync, set()
            items = self._count_items(pending, resync) if self._tally.known else []
            delta = {job: s for job, s in pending.items() if not is_item(job) and self._states.get(job) != s}
            self._states.update(delta)
            with self.hold_sync():
                self._header(done=self._run.done if done is None else done, force_elapsed=bool(delta or items))
            if delta or items:
                message: dict[str, Any] = {"kind": "states", "states": delta}
                if items:
                    message["items"] = {job: self._tally.counts(job) for job in items}
                self.send(message)

    def _count_items(self, pending: dict[str, str], resync: set[str]) -> list[str]:
        """Apply the items' changes to the tally; return the mapped types whose counts changed."""
        run, tally = self._run, self._tally
        if run.machine is not self._machine:
            self._machine = run.machine
            resync = set(tally.known)
        changed: set[str] = set()
        for job in resync | set(tally.stale(run)):
            before = tally.counts(job)
            tally.resync(run, job)
            if tally.counts(job) != before:
                changed.add(job)
        for key, state in pending.items():
            if is_item(key):
                job = tally.apply(key, state)
                if job is not None:
                    changed.add(job)
        return [job for job in run.graph.mapped if job in changed]

    def _header_state(self, *, done: bool) -> dict[str, Any]:
        counts = self._tally.header_counts(self._states)
        return {
            "total": sum(counts.values()),
            "counts": {s: counts[s] for s in DISPLAY_STATES if counts.get(s)},
            "message": self._run.message or self._dot_error,
            "elapsed": round(self._elapsed(done), 1),
            "running": not done,
        }

    def _header(self, *, done: bool, force_elapsed: bool = True) -> None:
        state = self._header_state(done=done)
        self.total = state["total"]
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

    def keep_picture(self, handle: Any, *, drawn: bool = True) -> None:
        """Keep the saved picture shown through ``handle`` (a display handle) up to date.

        ``drawn`` False: it is a placeholder; it is drawn now if the run already ended.
        """
        self._static_handles.append(handle)
        if not drawn and self._run.done:
            self._update_static()

    def _update_static(self) -> None:
        with self._static_lock:
            if not self._static_handles:
                return
            try:
                bundle = static_bundle(self._run, self.states, self.items)
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
                    self.send({"kind": "snapshot", "view": view, "states": dict(self._states),
                               "items": self._tally.all_counts()})
            elif kind == "select":
                details = job_details(self._run, job, state=content.get("state") or None,
                                      offset=int(content.get("offset") or 0))
                self.send({"kind": "details", "view": view, "job": job, "details": details})
            elif kind == "why":
                self.send({"kind": "why", "view": view, "job": job, "why": hover_why(self._run, job)})
            elif kind == "preview":
                jobs = preview(self._run, action, job)
                self.send({"kind": "preview", "view": view, "action": action, "job": job, **reply_jobs(jobs)})
            elif kind == "action":
                jobs = act(self._run, action, job)
                self.send({"kind": "done", "view": view, "action": action, "job": job, **reply_jobs(jobs)})
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
