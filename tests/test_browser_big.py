"""A 10,000-job graph in a real JupyterLab 4 with Debian's Chromium: a first picture at once, live states.

The cell that starts the run (no-op handlers on a ThreadExecutor, one job held
by a gate; dot's layout is made at once but handed over only when a later cell
says so) is timed in the page: from Shift+Enter to the first node ``<g
data-job>`` painted, and from the widget's view appearing to that node. Then:
the states reach the nodes of the quick layered picture; Graphviz's layout
replaces it and shows the same states (none sent before it is lost); a node can
still be selected; a later change reaches the new picture; a second view
colours its 10,000 nodes from one snapshot. The server and browser fixtures are
those of tests/test_browser.py; the timings are printed and go to
test-artifacts/big-graph-timings.json.
"""

from __future__ import annotations

import json

import pytest
from test_browser import ARTIFACTS, browser, new_page, notebook_of, open_notebook, run_cells, server  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

JOBS, WIDTH = 10_000, 40
HELD = f"job{JOBS - 1:05d}"  # a job of the last layer, held until a later cell

SETUP = f'''
import threading
import overseer_nb as ov
from overseer_nb.display import render

# dot runs as usual, but its layout is handed over only when a later cell says so, so
# that the states certainly reach the quick picture before dot's replaces it
layout_gate, run_dot = threading.Event(), render.run_dot
def held_dot(graph, **kwargs):
    svg = run_dot(graph, **kwargs)
    layout_gate.wait(120)
    return svg
render.run_dot = held_dot

def parents(i):  # layers of {WIDTH}; two parents in the layer above
    if i < {WIDTH}:
        return []
    return sorted({{f"job{{i - {WIDTH}:05d}}", f"job{{i - {WIDTH} - (1 if i % {WIDTH} else -1):05d}}"}})

graph = ov.JobGraph({{f"job{{i:05d}}": parents(i) for i in range({JOBS})}})
gate = threading.Event()
handlers = {{job: (lambda job: None) for job in graph}}
handlers["{HELD}"] = lambda job: gate.wait(120)
'''
START = "run = ov.run(graph, handlers, executor=ov.ThreadExecutor(workers=4))\ndisplay(run)"
LAYOUT = "layout_gate.set()"
RELEASE = "gate.set()\nrun.wait(60);"
# a second view, alone: its states come in one snapshot (the saved picture of the ended
# run, megabytes that the page decodes, would come first and be timed with it)
SECOND = "display(run.widget)"

# Times (performance.now(), ms) in the page, watched from just before the cell runs:
# when the nth view root and its first node appear, the first paint after that, and
# (if `finished` is given) when that many of its nodes show "finished".
WATCH = """([nth, finished]) => {
    const t = window.__ovTimes = {start: performance.now()};
    const allDone = view => {
        if (view.querySelectorAll('g[data-state="finished"]').length >= finished) t.finished = performance.now();
        else requestAnimationFrame(() => allDone(view));
    };
    const seen = () => {
        const views = document.querySelectorAll('.overseer-graph');
        if (views.length <= nth) return false;
        const view = views[nth];
        if (t.view === undefined) t.view = performance.now();
        const node = view.querySelector('g[data-job]');
        if (!node) return false;
        t.node = performance.now();
        t.layout = view.dataset.layout;
        requestAnimationFrame(() => setTimeout(() => {
            t.painted = performance.now();
            requestAnimationFrame(() => setTimeout(() => { t.labels = performance.now(); }, 0));
        }, 0));
        if (finished) allDone(view);
        return true;
    };
    const observer = new MutationObserver(() => { if (seen()) observer.disconnect(); });
    observer.observe(document.body, {childList: true, subtree: true});
}"""


def count(page, selector: str, nth: int = 0) -> int:
    return page.evaluate("([s, n]) => document.querySelectorAll('.overseer-graph')[n].querySelectorAll(s).length",
                         [selector, nth])


def wait_count(page, selector: str, n: int, nth: int = 0, timeout: float = 60) -> None:
    page.wait_for_function(
        "([s, n, nth]) => { const v = document.querySelectorAll('.overseer-graph')[nth];"
        " return v && v.querySelectorAll(s).length === n; }",
        arg=[selector, n, nth], timeout=timeout * 1000,
    )


def timings(page) -> dict:
    page.wait_for_function("() => window.__ovTimes && window.__ovTimes.labels !== undefined", timeout=60_000)
    t = page.evaluate("() => window.__ovTimes")
    return {"cell_to_node_s": (t["painted"] - t["start"]) / 1000, "view_to_node_s": (t["painted"] - t["view"]) / 1000,
            "view_to_labels_s": (t["labels"] - t["view"]) / 1000, "first_layout": t["layout"]}


def test_a_10000_job_graph_shows_at_once_and_stays_live(server, browser):  # noqa: F811 - the imported fixtures
    name = "big_graph.ipynb"
    notebook_of(server.root / name, [SETUP, START, LAYOUT, RELEASE, SECOND])
    report: dict = {}
    try:
        with new_page(browser, "big-graph") as page:
            open_notebook(page, server, name)
            run_cells(page, 1)  # the graph and handlers, not timed

            page.evaluate(WATCH, [0, 0])
            run_cells(page, 1, first=1)
            report["first"] = first = timings(page)
            root = page.locator(".overseer-graph").first
            # the quick picture has every job as a node
            assert first["first_layout"] == "layered"
            assert count(page, "g[data-job]") == JOBS

            # live: every job but the held one finishes on the quick picture
            wait_count(page, 'g[data-state="finished"]', JOBS - 1)
            assert root.locator(f'g[data-job="{HELD}"]').get_attribute("data-state") == "started"
            assert page.evaluate("() => document.querySelector('.overseer-graph').dataset.layout") == "layered"
            assert "the Graphviz layout follows" in root.locator(".ov-layout-note").text_content()
            page.evaluate("() => { document.querySelector('.overseer-graph .ov-canvas svg').__ovMark = 'first'; }")
            root.locator('g[data-job="job00041"]').click()
            panel = root.locator(".ov-panel")
            panel.locator(".ov-attempts tbody tr").wait_for(timeout=10_000)
            assert panel.locator(".ov-panel-title").text_content() == "job00041"

            # Graphviz's layout replaces the picture, coloured with the states sent before it
            run_cells(page, 1, first=2)
            page.wait_for_function("() => document.querySelector('.overseer-graph').dataset.layout === 'dot'",
                                   timeout=90_000)
            assert page.evaluate("() => document.querySelector('.overseer-graph .ov-canvas svg').__ovMark") is None
            assert count(page, "g[data-job]") == JOBS
            assert count(page, 'g[data-state="finished"]') == JOBS - 1
            assert root.locator(f'g[data-job="{HELD}"]').get_attribute("data-state") == "started"
            assert "ov-selected" in root.locator('g[data-job="job00041"]').get_attribute("class").split()
            assert not root.locator(".ov-layout-note").is_visible()
            ARTIFACTS.mkdir(exist_ok=True)
            root.screenshot(path=str(ARTIFACTS / "big-graph.png"))

            # a change after the new picture reaches it, on the same <svg>
            page.evaluate("() => { document.querySelector('.overseer-graph .ov-canvas svg').__ovMark = 'dot'; }")
            run_cells(page, 1, first=3)
            wait_count(page, 'g[data-state="finished"]', JOBS)
            page.wait_for_function(
                "() => document.querySelector('.overseer-graph .ov-progress').textContent.includes('10000 / 10000')")
            assert page.evaluate("() => document.querySelector('.overseer-graph .ov-canvas svg').__ovMark") == "dot"

            # a second view: its 10,000 states arrive in one snapshot and are applied at once
            page.evaluate(WATCH, [1, JOBS])
            run_cells(page, 1, first=4)
            report["second_view"] = timings(page)
            page.wait_for_function("() => window.__ovTimes.finished !== undefined", timeout=60_000)
            t = page.evaluate("() => window.__ovTimes")
            report["second_view"]["view_to_all_states_s"] = (t["finished"] - t["view"]) / 1000
            assert count(page, 'g[data-state="finished"]', nth=1) == JOBS
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "big-graph-timings.json").write_text(json.dumps(report, indent=2))
        print("big graph timings:", json.dumps(report))
    # the target: a first picture within about a second of the view
    assert first["view_to_node_s"] <= 1.5, report
    # looser guards, for busy machines: the labels a frame later; the whole cell, ov.run included
    assert first["view_to_labels_s"] <= 4.0, report
    assert first["cell_to_node_s"] <= 5.0, report
    assert report["second_view"]["view_to_all_states_s"] <= 3.0, report
