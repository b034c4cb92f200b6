"""Big graphs in the widget, without a browser: a quick layered picture at once, ``dot``'s layout later.

A 10,000-job widget is made in a fraction of a second with the layered picture;
``dot`` runs on a background thread and its layout replaces the picture; states
sent before it arrives are kept. Graphs ``dot`` would draw as one endless row
keep the layered picture. ``render.run_dot`` is wrapped where a test needs to
hold the layout back or see that it is not run.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_widget import spied_widget

import overseer_nb as ov
from overseer_nb.display import STATE_STYLE, render
from overseer_nb.display.layered import MAX_COLUMNS, layered_svg, widest_depth
from overseer_nb.display.widget import BIG_JOBS, pending_bundle, static_bundle
from overseer_nb.machine import Step

if shutil.which("dot") is None:
    pytest.skip("needs Graphviz dot", allow_module_level=True)

STATIC = Path(ov.__file__).parent / "display" / "static"
SVG = "{http://www.w3.org/2000/svg}"


def layers(n: int, width: int = 40) -> dict[str, list[str]]:
    """``n`` jobs in layers of ``width``, two parents each in the layer above (as in the browser test)."""
    def parents(i):
        if i < width:
            return []
        return sorted({f"job{i - width:05d}", f"job{i - width - (1 if i % width else -1):05d}"})

    return {f"job{i:05d}": parents(i) for i in range(n)}


def widget_of(graph: dict | ov.JobGraph):
    g = ov.JobGraph(graph)
    run = ov.Run(g, {job: (lambda job: None) for job in g}, ov.ThreadExecutor())
    widget, sent = spied_widget(run)
    return run, widget, sent


@pytest.fixture
def fresh_layouts():
    render.clear_layouts()
    yield
    render.clear_layouts()


@pytest.fixture
def held_dot(monkeypatch, fresh_layouts):
    """``dot`` runs only once the test sets the returned event; ``.calls`` counts the runs."""
    gate = threading.Event()
    real = render.run_dot

    def run_dot(graph, **kwargs):
        gate.calls += 1
        assert gate.wait(60), "the test did not release dot"
        return real(graph, **kwargs)

    gate.calls = 0
    monkeypatch.setattr(render, "run_dot", run_dot)
    yield gate
    gate.set()


def nodes(svg: str) -> list[ET.Element]:
    return [g for g in ET.fromstring(svg).iter(f"{SVG}g") if "overseer-node" in g.get("class", "").split()]


# -- the layered picture ---------------------------------------------------------------------------
def test_layered_picture_has_every_job_as_a_node_in_dots_shape():
    graph = layers(2000)
    graph.update({'quote"d': ["job01999"], "<tag> & more": ['quote"d'], "é" * 40: ["<tag> & more"]})
    g = ov.JobGraph(graph)
    svg = layered_svg(g)
    found = nodes(svg)  # well-formed XML
    assert [n.get("data-job") for n in found] == list(g)
    assert [n.get("id") for n in found] == [f"ovjob_{i}" for i in range(len(g))]
    assert {n.get("data-state") for n in found} == {"unstarted"}
    for n in found[:50] + found[-3:]:
        assert n.find(f"{SVG}title").text == n.get("data-job")
        assert n.find(f"{SVG}path").get("fill") == STATE_STYLE["unstarted"]["fill"]
    assert found[-1].find(f"{SVG}text").text.endswith("\u2026"), "a long name is clipped in the label only"
    # what static_picture reads from dot's SVG
    assert re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"\s*viewBox="([^"]*)"', svg)
    # one straight line per edge, parents above children
    edges = ET.fromstring(svg).find(f".//{SVG}path[@class='overseer-edges']").get("d")
    assert edges.count("M") == sum(len(p) for p in graph.values())
    y = {n.get("data-job"): float(re.search(r",([\d.]+)\)", n.get("transform")).group(1)) for n in found}
    assert all(y[p] < y[job] for job, parents in graph.items() for p in parents)


def test_a_wide_depth_wraps_onto_rows():
    g = ov.JobGraph({f"job{i}": [] for i in range(5 * MAX_COLUMNS + 1)})
    ys = {re.search(r",([\d.]+)\)", n.get("transform")).group(1) for n in nodes(layered_svg(g))}
    assert len(ys) == 6
    assert widest_depth(g) == 5 * MAX_COLUMNS + 1


def test_static_svg_colours_the_layered_picture(fresh_layouts, monkeypatch):
    g = ov.JobGraph(layers(3000))
    monkeypatch.setattr(render, "run_dot", lambda graph, **kw: pytest.fail("a static picture waits for no dot"))
    t0 = time.perf_counter()
    svg = render.static_svg(g, {"job00000": "finished", "job02999": "failed"})
    assert time.perf_counter() - t0 < 1.0
    by_job = {n.get("data-job"): n for n in nodes(svg)}
    assert len(by_job) == 3000
    assert by_job["job00000"].get("data-state") == "finished"
    assert by_job["job00000"].find(f"{SVG}path").get("fill") == STATE_STYLE["finished"]["fill"]
    assert by_job["job02999"].find(f"{SVG}path").get("stroke-width") == STATE_STYLE["failed"]["stroke-width"]
    assert by_job["job00001"].get("data-state") == "unstarted"
    assert "image/svg+xml" in render.graph_mimebundle(g)


# -- the widget -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_10000_job_widget_shows_at_once_and_gets_dots_layout_later(held_dot):
    t0 = time.perf_counter()
    run, widget, sent = widget_of(layers(10_000))
    made = time.perf_counter() - t0
    assert made < 1.0, f"the widget took {made:.2f} s"
    assert widget.layout == "layered" and widget.layout_pending
    assert widget.svg.count("data-job=") == 10_000
    first = widget.svg

    # states that change before the layout arrives
    widget._on_step(run, Step(display={"job00000": "finished", "job00001": "failed", "job09999": "started"}))
    widget.flush()
    held_dot.set()
    deadline = time.monotonic() + 120
    while widget.layout_pending and time.monotonic() < deadline:
        time.sleep(0.05)
    assert widget.layout == "dot" and not widget.layout_pending
    assert widget.svg != first and 'class="graph"' in widget.svg
    assert len(nodes(widget.svg)) == 10_000
    assert held_dot.calls == 1
    assert widget.states["job00001"] == "failed" and widget.states["job09999"] == "started"

    # the wire: the states went before the new picture, which went once; a new view gets them all
    kinds = [("states" if m["method"] == "custom" else "svg" if "svg" in m.get("state", {}) else "other") for m in sent]
    assert kinds.count("svg") == 1 and kinds.index("states") < kinds.index("svg")
    widget._handle_msg({"content": {"data": {"method": "custom", "content": {"kind": "hello", "view": "v"}}}, "buffers": []})
    snapshot = [m["content"] for m in sent if m["method"] == "custom" and m["content"]["kind"] == "snapshot"][-1]
    assert snapshot["states"]["job00001"] == "failed" and len(snapshot["states"]) == 10_000

    # the saved picture is now drawn on dot's layout, with those states
    saved = static_bundle(run, widget.states)["image/svg+xml"]
    assert 'class="graph"' in saved and 'data-job="job00001" data-state="failed"' in saved
    widget.close()


def test_a_second_widget_of_the_graph_shares_the_layout(held_dot):
    graph = layers(1200)
    _, first, _ = widget_of(graph)
    _, second, _ = widget_of(graph)
    assert first.layout_pending and second.layout_pending
    held_dot.set()
    deadline = time.monotonic() + 60
    while (first.layout_pending or second.layout_pending) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.svg == second.svg and first.layout == second.layout == "dot"
    assert held_dot.calls == 1, "dot ran once for the graph"
    _, third, _ = widget_of(graph)
    assert third.layout == "dot" and not third.layout_pending
    for w in (first, second, third):
        w.close()


def test_a_graph_dot_would_draw_as_one_row_keeps_the_layered_picture(held_dot):
    t0 = time.perf_counter()
    _, widget, _ = widget_of({f"job{i:05d}": [] for i in range(10_000)})
    assert time.perf_counter() - t0 < 1.0
    assert widget.layout == "layered" and not widget.layout_pending
    assert not render.dot_suits(widget._run.graph)
    assert held_dot.calls == 0
    assert not [t for t in threading.enumerate() if t.name == "overseer-layout"]
    widget.close()


def test_a_small_graph_is_laid_out_by_dot_at_once(fresh_layouts):
    _, widget, _ = widget_of({"a": [], "b": ["a"], "c": ["a", "b"]})
    assert widget.layout == "dot" and not widget.layout_pending
    assert 'class="graph"' in widget.svg and 'data-job="c" data-state="unstarted"' in widget.svg
    widget.close()


@pytest.mark.parametrize("jobs", [1200, 3000])  # dot fails while the widget waits for it, or after
def test_a_failed_layout_keeps_the_layered_picture(monkeypatch, fresh_layouts, caplog, jobs):
    def broken(graph, **kwargs):
        raise RuntimeError("dot crashed")

    monkeypatch.setattr(render, "run_dot", broken)
    _, widget, _ = widget_of(layers(jobs))
    deadline = time.monotonic() + 10
    while widget.layout_pending and time.monotonic() < deadline:
        time.sleep(0.02)
    assert widget.layout == "layered" and not widget.layout_pending
    assert len(nodes(widget.svg)) == jobs
    assert "could not lay out" in caplog.text and "dot crashed" in widget.message
    widget.close()


def test_a_closed_widget_ignores_a_late_layout(held_dot):
    _, widget, sent = widget_of(layers(3000))
    widget.close()
    sent.clear()
    after = threading.Event()
    render.full_layout(widget._run.graph).add_done_callback(lambda f: after.set())  # runs after the widget's
    held_dot.set()
    assert after.wait(60)
    assert widget.layout == "layered" and not sent


def test_the_saved_picture_of_a_big_run_waits_for_its_end():
    g = ov.JobGraph(layers(BIG_JOBS + 1))
    run = ov.Run(g, {job: (lambda job: None) for job in g}, ov.ThreadExecutor())
    bundle = pending_bundle(run)
    assert f"overseer-static-{run.run_id}" in bundle["image/svg+xml"]  # hidden by a live view like the picture
    assert "1,001 jobs" in bundle["image/svg+xml"] and len(bundle["image/svg+xml"]) < 1000


def test_the_front_end_finds_nodes_once_per_picture():
    """State changes look nodes up in a Map; only a new picture walks the DOM."""
    js = (STATIC / "widget.js").read_text()
    apply = re.search(r"function applyStates\(changes\) \{(.*?)\n  \}", js, re.S).group(1)
    paint = re.search(r"function paint\(job, state\) \{(.*?)\n  \}", js, re.S).group(1)
    assert "querySelector" not in apply + paint and "nodes.get(job)" in paint
    picture = re.search(r"function showPicture\(\) \{(.*?)\n  \}", js, re.S).group(1)
    assert 'querySelectorAll("g[data-job]")' in picture and "for (const [job, state] of states)" in picture
    assert js.count('querySelectorAll("g[data-job]")') == 1
    assert f"const BIG = {BIG_JOBS};" in js
    assert ".ov-big" in (STATIC / "widget.css").read_text()
