"""The live widget without a browser: what it sends, how often, and what its messages do."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import overseer_nb as ov
from overseer_nb.display import STATE_STYLE

STATIC = Path(ov.__file__).parent / "display" / "static"


def _handlers(fail: set[str] = frozenset(), sleep: float = 0.0):
    def make(name):
        def handler(job):
            if sleep:
                time.sleep(sleep)
            if name in fail:
                raise FileNotFoundError(f"input of {name} is missing")
            print(f"{name} ran")
            return {"job": name}

        return handler

    return make


def start(graph: dict, fail=(), sleep=0.0, interval=0.05, **kw):
    """A ThreadExecutor run and its widget, created before anything runs."""
    make = _handlers(set(fail), sleep)
    handlers = {job: make(job) for job in graph}
    g = ov.JobGraph(graph)
    run = ov.Run(g, handlers, ov.ThreadExecutor(workers=kw.pop("workers", 2)))
    widget, sent = spied_widget(run, interval)
    run._widget = widget
    return run.start(), widget, sent, handlers


def spied_widget(run, interval=0.05):
    """A widget of ``run`` and the list of every message it sends (all go through its ``_send``)."""
    from overseer_nb.display.widget import RunWidget

    widget = RunWidget(run, interval=interval)
    sent: list[dict] = []
    original = widget._send

    def spy(msg, buffers=None):
        sent.append(msg)
        return original(msg, buffers)

    widget._send = spy
    return widget, sent


def settle(run, widget, timeout=10.0):
    """Wait for the run, then for the widget's last flush."""
    run.wait(timeout)
    deadline = time.monotonic() + timeout
    while widget._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert widget._thread is None, "the widget's flusher did not stop after the run ended"


DIAMOND = {"fetch": [], "parse": ["fetch"], "side": ["fetch"], "report": ["parse", "side"], "publish": ["report"]}


def test_import_overseer_nb_does_not_import_widgets():
    code = "import sys, overseer_nb; print(sorted(m for m in ('anywidget', 'ipywidgets', 'overseer_nb.display.widget') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_css_colours_match_state_style():
    css = (STATIC / "widget.css").read_text()
    for state, style in STATE_STYLE.items():
        found = {
            key: re.search(rf"--ov-{key}-{state}:\s*([^;]+);", css)
            for key in ("fill", "stroke", "width", "dash")
        }
        assert all(found.values()), f"widget.css lacks a colour property of {state!r}"
        assert found["fill"].group(1).strip().lower() == style["fill"].lower(), state
        assert found["stroke"].group(1).strip().lower() == style["stroke"].lower(), state
        assert found["width"].group(1).strip() == style["stroke-width"], state
        assert found["dash"].group(1).strip() == (style["dash"] or "none"), state
        assert f'g[data-state="{state}"]' in css, f"no node rule for {state!r}"


def test_static_files_are_in_the_package_and_offline():
    from overseer_nb.display.widget import RunWidget

    js = (STATIC / "widget.js").read_text()
    assert "export default" in js
    assert not re.search(r"https?://", js + (STATIC / "widget.css").read_text()), "no network at run time"
    assert RunWidget._esm and "overseer-graph" in str(RunWidget._esm)
    for label in ("Retry failed", "Cancel", "Retry subtree", "Rerun from here", "Abort"):
        assert f'"{label}"' in js


def test_states_after_transitions_and_svg_sent_once():
    run, widget, sent, _ = start(DIAMOND, fail={"parse"})
    settle(run, widget)
    assert widget.states == run.display_states == {
        "fetch": "finished", "parse": "failed", "side": "finished", "report": "blocked", "publish": "blocked",
    }
    assert widget.counts == {"finished": 2, "failed": 1, "blocked": 2}
    assert widget.running is False and widget.total == 5
    assert 'data-job="parse"' in widget.svg and 'data-state="unstarted"' in widget.svg
    # state changes went as custom messages; the picture never went again
    assert not any("svg" in m.get("state", {}) for m in sent)
    shown: dict = {}
    for m in sent:
        if m["method"] == "custom" and m["content"]["kind"] == "states":
            shown.update(m["content"]["states"])
    assert shown == widget.states


def test_coalescing_bounds_the_messages():
    graph = {f"job{i:03d}": [] for i in range(300)}
    run, widget, sent, _ = start(graph, interval=0.1, workers=4)
    t0 = time.monotonic()
    settle(run, widget, timeout=30)
    elapsed = time.monotonic() - t0
    deltas = [m["content"]["states"] for m in sent if m["method"] == "custom"]
    updates = [m for m in sent if m["method"] == "update"]
    # 600 transitions (started, finished) in well under a second: a few flushes, not 600 messages
    flushes = elapsed / 0.1 + 2
    assert len(deltas) <= flushes, (len(deltas), elapsed)
    assert len(updates) <= flushes, (len(updates), elapsed)
    assert len(deltas) < 120  # 600 changes
    # only changes cross the wire: no job is sent twice in a row with the same state
    last: dict = {}
    for delta in deltas:
        for job, state in delta.items():
            assert last.get(job) != state
            last[job] = state
    assert set(widget.states.values()) == {"finished"}


def test_coalescing_of_a_burst_of_steps():
    """Steps handed to the subscriber back to back become one message."""
    from overseer_nb.machine import Step

    run, widget, sent, _ = start({"a": [], "b": ["a"]}, interval=0.2)
    settle(run, widget)
    sent.clear()
    for i in range(500):
        widget._on_step(run, Step(display={"a": "started" if i % 2 else "requeued", "b": "blocked"}))
    time.sleep(0.5)
    deltas = [m["content"]["states"] for m in sent if m["method"] == "custom"]
    assert 1 <= len(deltas) <= 2, deltas  # 500 steps in a few ms: one flush (two if split by chance)
    merged = {k: v for d in deltas for k, v in d.items()}
    assert merged == {"a": "started", "b": "blocked"}
    assert widget.states == merged


def _click(widget, **content):
    """What a front-end click delivers to the kernel: a comm message with custom content."""
    widget._handle_msg({"content": {"data": {"method": "custom", "content": {"view": "v1", **content}}}, "buffers": []})


def _replies(sent, kind):
    return [m["content"] for m in sent if m["method"] == "custom" and m["content"]["kind"] == kind]


def test_click_retry_subtree_calls_run_retry_with_the_job():
    run, widget, sent, handlers = start(DIAMOND, fail={"parse"})
    settle(run, widget)
    calls = []
    real_retry = run.retry

    def retry(job=None, **kw):
        calls.append((job, kw))
        return real_retry(job, **kw)

    run.retry = retry
    handlers["parse"] = lambda job: "fixed"
    _click(widget, kind="preview", action="retry", job="parse")
    assert calls[-1] == ("parse", {"dry_run": True})
    assert _replies(sent, "preview")[-1]["jobs"] == ["parse", "publish", "report"]
    assert run.statuses["parse"] == "failed", "a preview changes nothing"
    _click(widget, kind="action", action="retry", job="parse")
    assert calls[-1] == ("parse", {})
    settle(run, widget)
    assert set(widget.states.values()) == {"finished"}
    assert _replies(sent, "done")[-1]["jobs"] == ["parse", "publish", "report"]


def test_click_retry_failed_and_cancel():
    run, widget, sent, handlers = start(DIAMOND, fail={"parse", "side"})
    settle(run, widget)
    calls = []
    real_retry = run.retry
    run.retry = lambda job=None, **kw: calls.append(job) or real_retry(job, **kw)
    handlers["parse"] = handlers["side"] = lambda job: "fixed"
    _click(widget, kind="action", action="retry_failed")
    assert calls == [None]
    settle(run, widget)
    assert run.succeeded and widget.counts == {"finished": 5}

    handlers["fetch"] = lambda job: time.sleep(0.3)
    run.rerun("fetch")
    _click(widget, kind="action", action="cancel")
    settle(run, widget)
    assert widget.counts.get("aborted", 0) >= 4


def test_select_sends_details_on_demand():
    run, widget, sent, _ = start(DIAMOND, fail={"parse"})
    settle(run, widget)
    assert not _replies(sent, "details"), "details are sent only when asked"
    _click(widget, kind="select", job="parse")
    d = _replies(sent, "details")[-1]
    assert d["view"] == "v1" and d["job"] == "parse"
    assert d["details"]["status"] == "failed" and d["details"]["display_state"] == "failed"
    assert "FileNotFoundError" in d["details"]["traceback"]
    assert d["details"]["attempts"][0]["number"] == 1 and d["details"]["attempts"][0]["outcome"] == "failed"
    assert d["details"]["can"] == {"retry": True, "rerun": True, "abort": False}
    _click(widget, kind="select", job="side")
    d = _replies(sent, "details")[-1]["details"]
    assert "side ran" in d["stdout"] and "'job': 'side'" in d["result"]


def test_bad_messages_answer_with_an_error_and_change_nothing():
    run, widget, sent, _ = start(DIAMOND, fail={"parse"})
    settle(run, widget)
    _click(widget, kind="action", action="retry", job="fetch")  # finished: retry refuses
    _click(widget, kind="action", action="explode")
    _click(widget, kind="select", job="nope")
    errors = _replies(sent, "error")
    assert "rerun" in errors[0]["error"] and "explode" in errors[1]["error"] and "nope" in errors[2]["error"]
    assert run.statuses["fetch"] == "finished" and run.statuses["parse"] == "failed"


def test_hello_sends_a_snapshot_to_a_new_view():
    run, widget, sent, _ = start(DIAMOND, fail={"parse"})
    settle(run, widget)
    _click(widget, kind="hello")
    assert _replies(sent, "snapshot")[-1]["states"] == run.display_states


def test_a_failing_widget_never_breaks_the_run(caplog):
    run, widget, sent, _ = start(DIAMOND)

    def broken(*args, **kwargs):
        raise RuntimeError("front end gone")

    widget.send = broken
    run.wait(10)
    assert run.succeeded
    settle(run, widget)
    assert "could not update" in caplog.text


def test_subscriber_is_cheap_on_the_loop_thread():
    from overseer_nb.machine import Step

    run, widget, sent, _ = start({"a": []})
    settle(run, widget)
    step = Step(display={"a": "started"})
    t0 = time.perf_counter()
    for _ in range(2000):
        widget._on_step(run, step)
    assert (time.perf_counter() - t0) / 2000 < 1e-3
    assert threading.active_count() < 50


def test_run_widget_is_cached_and_static_picture_updates_at_run_end():
    run, widget, sent, handlers = start(DIAMOND, fail={"parse"})
    assert run.widget is widget is run.widget
    settle(run, widget)

    class Handle:
        bundles: list = []

        def update(self, bundle, raw=False):
            self.bundles.append(bundle)

    widget._static_handles.append(Handle())
    handlers["parse"] = lambda job: 1
    run.retry()
    settle(run, widget)
    svg = Handle.bundles[-1]["image/svg+xml"]
    assert f"overseer-static-{run.run_id}" in svg
    assert svg.count('data-state="finished"') == 5 and "5/5 finished" in svg
    bundle = run._repr_mimebundle_()
    assert {"image/svg+xml", "text/plain", "application/vnd.jupyter.widget-view+json"} <= set(bundle)


def test_display_without_a_kernel_prints_the_summary(capsys):
    from overseer_nb.display.widget import display_run

    run, widget, sent, _ = start({"a": []})
    settle(run, widget)
    display_run(run)
    assert "Run " in capsys.readouterr().out


@pytest.mark.cluster
def test_widget_follows_a_cluster_run(client):
    from overseer_nb.display.widget import RunWidget

    def bad(job):
        raise ValueError("no input")

    run = ov.run({"a": [], "b": ["a"], "c": ["b"]}, {"a": lambda j: 1, "b": bad, "c": lambda j: 3}, cluster=client)
    widget = RunWidget(run, interval=0.05)
    settle(run, widget, timeout=60)
    assert widget.states == {"a": "finished", "b": "failed", "c": "blocked"}
    widget.close()


def test_widget_of_a_run_loaded_from_the_journal(tmp_path):
    journal = str(tmp_path / "journal.sqlite")

    def bad(job):
        time.sleep(0.05)
        raise ValueError("no input")

    first = ov.run({"a": [], "b": ["a"], "c": ["b"]}, {"a": lambda j: 1, "b": bad, "c": lambda j: 3},
                   executor=ov.ThreadExecutor(), journal=journal).wait(10)
    loaded = ov.load_run(first.run_id, journal=journal)
    widget = loaded.widget
    assert widget.states == {"a": "finished", "b": "failed", "c": "blocked"}
    assert widget.running is False and widget.elapsed >= 0.05
    from overseer_nb.display.widget import static_bundle

    assert 'data-job="b" data-state="failed"' in static_bundle(loaded)["image/svg+xml"]


def test_run_message_reaches_the_header():
    from overseer_nb.machine import Step

    run, widget, sent, _ = start({"a": []})
    settle(run, widget)
    run.message = "no engines: the cluster has no engine to run jobs"
    widget._on_step(run, Step())  # the run publishes an empty step when its message changes
    time.sleep(0.3)
    assert widget.message.startswith("no engines")
    assert any(m["method"] == "update" and m["state"].get("message", "").startswith("no engines") for m in sent)


def test_previews_of_rerun_abort_and_cancel_change_nothing():
    run, widget, sent, _ = start(DIAMOND, fail={"parse"})
    settle(run, widget)
    before = run.statuses
    _click(widget, kind="preview", action="rerun", job="fetch")
    _click(widget, kind="preview", action="abort", job="report")
    _click(widget, kind="preview", action="cancel")
    rerun, abort, cancel = _replies(sent, "preview")
    assert rerun["jobs"] == sorted(DIAMOND)
    assert abort["jobs"] == ["publish", "report"] and cancel["jobs"] == ["publish", "report"]
    assert run.statuses == before
