"""The widget of a run with a mapped job type (SPEC §12), without a browser: one node, its counts, its panel."""

from __future__ import annotations

import json
import re
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_widget import _click, _replies, settle, spied_widget

import overseer_nb as ov
from overseer_nb.display import STATE_STYLE, graph_dot, layered_svg, render
from overseer_nb.display.mapped import BAR_STATES, MIN_SEGMENT, segments

if shutil.which("dot") is None:
    pytest.skip("needs Graphviz dot", allow_module_level=True)

STATIC = Path(ov.__file__).parent / "display" / "static"
SVG = "{http://www.w3.org/2000/svg}"
SWEEP = {"grid": [], "train": [ov.each("grid")], "best": ["train"]}


def sweep(n: int = 6, fail=(), delay: float = 0.0):
    """Handlers of SWEEP: ``grid`` gives ``n`` values; the items in ``fail`` raise (until ``fail`` is emptied)."""
    fail = set(fail)

    def grid(job):
        return list(range(n))

    def train(job):
        if delay:
            time.sleep(delay)
        if job.index in fail:
            raise ValueError(f"bad value {job.inputs['grid']}\nsecond line")
        if job.index < 3:
            print(f"item {job.index}")
        return job.inputs["grid"] * 10

    def best(job):
        return max(job.inputs["train"], default=None)

    return {"grid": grid, "train": train, "best": best}, fail


def start(graph=SWEEP, handlers=None, interval=0.05, workers=2):
    """A ThreadExecutor run of ``graph`` and its widget (made before anything runs), and what the widget sends."""
    run = ov.Run(ov.JobGraph(graph), handlers, ov.ThreadExecutor(workers=workers))
    widget, sent = spied_widget(run, interval)
    run._widget = widget
    return run.start(), widget, sent


def custom(sent, kind="states"):
    return [m["content"] for m in sent if m["method"] == "custom" and m["content"]["kind"] == kind]


def node(svg: str, job: str) -> ET.Element:
    found = [g for g in ET.fromstring(svg).iter(f"{SVG}g") if g.get("data-job") == job]
    assert len(found) == 1, f"{len(found)} nodes of {job!r}"
    return found[0]


# -- the picture -----------------------------------------------------------------------------------------
def test_a_mapped_type_is_one_node_with_a_second_outline_a_bar_and_an_each_edge():
    g = ov.JobGraph({"grid": [], "data": [], "train": [ov.each("grid"), "data"], "best": ["train"]})
    dot = graph_dot(g)
    assert re.search(r'"train" \[id="ovjob_2", peripheries=2[^]]*\]', dot)
    assert re.search(r'"grid" -> "train" \[label=" each"', dot) and '"data" -> "train";' in dot
    for svg in (render.run_dot(g), layered_svg(g)):
        assert svg.count("data-job=") == 4  # one node per job type, however many items
        train = node(svg, "train")
        assert train.get("class") == "node overseer-node overseer-mapped"
        outlines = [p for p in train if p.tag in (f"{SVG}path", f"{SVG}polygon")]
        assert len(outlines) == 2 and outlines[1].get("fill") == "none"  # the stack's second outline
        assert train.find(f"{SVG}text").text.strip() == "train"  # the name first, as in any node
        assert train.find(f"{SVG}rect[@class='ov-items-track']") is not None
        assert train.find(f"{SVG}text[@class='ov-items-count']") is not None
        assert node(svg, "data").get("class") == "node overseer-node"
        assert re.search(r">\s*each</text>", svg)


def test_the_static_picture_draws_counts_and_the_bar_with_inline_colours():
    g = ov.JobGraph(SWEEP)
    svg = render.static_svg(g, {"grid": "finished", "train": "failed"}, {"train": {"finished": 9998, "failed": 2}})
    train = node(svg, "train")
    assert train.get("data-state") == "failed" and train.get("data-items") == "10000"
    assert train.find(f"{SVG}text[@class='ov-items-count']").text == "9998/10000"
    bars = {r.get("data-state"): r for r in train.iter(f"{SVG}rect") if r.get("class") == "ov-seg"}
    assert set(bars) == {"finished", "failed"}
    assert bars["failed"].get("fill") == STATE_STYLE["failed"]["fill"]
    assert float(bars["failed"].get("width")) == pytest.approx(MIN_SEGMENT)  # 2 in 10,000 still show
    outer = [p for p in train if p.get("fill") == "none"][0]
    assert outer.get("stroke") == STATE_STYLE["failed"]["stroke"]
    unknown = node(render.static_svg(g, {}, {"train": None}), "train")
    assert unknown.get("data-items") is None and not unknown.find(f"{SVG}text[@class='ov-items-count']").text


def test_bar_segments_fill_the_bar_in_order_and_keep_small_ones_visible():
    parts = segments({"unstarted": 10, "finished": 30, "failed": 1, "started": 0}, 5.0, 100.0)
    assert [s for s, _, _ in parts] == ["finished", "failed", "unstarted"]
    assert parts[0][1] == 5.0 and sum(w for _, _, w in parts) == pytest.approx(100.0)
    assert all(a[1] + a[2] == pytest.approx(b[1]) for a, b in zip(parts, parts[1:], strict=False))
    assert segments({}, 0, 10) == [] and segments({"finished": 3}, 0, 10) == [("finished", 0, 10.0)]


def test_the_front_end_and_its_css_know_the_bar():
    js = (STATIC / "widget.js").read_text()
    css = (STATIC / "widget.css").read_text()
    found = re.search(r"const BAR_STATES = \[([^\]]*)\]", js).group(1)
    assert [s.strip().strip('"') for s in found.split(",")] == list(BAR_STATES)
    assert f"const MIN_SEGMENT = {MIN_SEGMENT};" in js
    for state in STATE_STYLE:
        assert f'rect.ov-seg[data-state="{state}"] {{ fill: var(--ov-fill-{state}); }}' in css
    for hook in ('"data-items"', "ov-items-count", "ov-items-track", "tr", '"data-job": r.job'):
        assert hook in js


# -- counts, data-items, messages -------------------------------------------------------------------------
def test_item_counts_follow_the_run_and_the_header_counts_items_as_jobs():
    handlers, _ = sweep(6, fail={2})
    run, widget, sent = start(handlers=handlers)
    settle(run, widget)
    assert widget.states == run.display_states == {"grid": "finished", "train": "failed", "best": "blocked"}
    assert widget.items == {"train": {"finished": 5, "failed": 1}}
    assert widget.counts == dict(run.counts()) == {"finished": 6, "failed": 1, "blocked": 1}
    assert widget.total == 8 and widget.nodes == 3 and widget.mapped == ["train"]
    messages = custom(sent)
    # items travel as counts per type, never one by one
    assert not any(re.search(r"\[\d+\]$", job) for m in messages for job in m["states"])
    assert messages[-1]["items"]["train"] == {"finished": 5, "failed": 1}
    assert not any("train[" in json.dumps(m) for m in sent if m["method"] == "update")
    _click(widget, kind="hello")
    snapshot = _replies(sent, "snapshot")[-1]
    assert snapshot["states"] == run.display_states and snapshot["items"] == {"train": {"finished": 5, "failed": 1}}
    from overseer_nb.display.widget import static_picture

    picture = static_picture(run, widget.states, widget.items)
    assert "6/8 finished" in picture and 'data-job="train" data-state="failed" data-items="6"' in picture
    assert ">5/6</text>" in picture


def test_data_items_changes_when_a_rerun_of_the_parent_maps_anew():
    handlers, _ = sweep(6)
    run, widget, sent = start(handlers=handlers)
    settle(run, widget)
    assert widget.items == {"train": {"finished": 6}}
    handlers["grid"] = lambda job: [7, 8, 9]
    run.rerun("grid")
    settle(run, widget)
    assert widget.items == {"train": {"finished": 3}} and widget.total == 5
    assert custom(sent)[-1]["items"]["train"] == {"finished": 3}
    assert run.results["best"] == 90
    from overseer_nb.display.widget import static_bundle

    assert 'data-job="train" data-state="finished" data-items="3"' in static_bundle(run, widget.states, widget.items)["image/svg+xml"]


def test_a_mapped_type_whose_parent_gave_no_list_counts_as_one_failed_job():
    handlers, _ = sweep()
    handlers["grid"] = lambda job: {"not": "a list"}
    run, widget, sent = start(handlers=handlers)
    settle(run, widget)
    assert widget.items == {"train": None} and widget.states["train"] == "failed"
    assert widget.counts == {"finished": 1, "failed": 1, "blocked": 1}  # so `Retry failed` is offered
    _click(widget, kind="select", job="train")
    page = _replies(sent, "details")[-1]["details"]["items"]
    assert page["known"] is False and page["over"] == "grid" and page["rows"] == []
    assert "not a list" in _replies(sent, "details")[-1]["details"]["message"]


def test_a_10000_item_map_is_one_node_and_costs_a_few_small_messages():
    n = 10_000
    handlers, _ = sweep(n)
    t0 = time.perf_counter()
    run, widget, sent = start(handlers=handlers, interval=0.1, workers=4)
    assert time.perf_counter() - t0 < 1.0, "one node: nothing to lay out per item"
    assert widget.svg.count("data-job=") == 3
    t0 = time.monotonic()
    settle(run, widget, timeout=120)
    elapsed = time.monotonic() - t0
    assert widget.items == {"train": {"finished": n}} and widget.total == n + 2
    messages = [m for m in sent if m["method"] in ("custom", "update")]
    assert len(messages) <= 2 * (elapsed / 0.1 + 3), (len(messages), elapsed)  # a states message and a header update per flush
    sizes = [len(json.dumps(m)) for m in messages]
    assert max(sizes) < 400, max(sizes)  # counts per state, not 10,000 names


# -- the panel ---------------------------------------------------------------------------------------------
def test_the_panel_of_a_mapped_type_lists_its_items_failed_first_a_page_at_a_time():
    handlers, _ = sweep(450, fail={5, 300, 449})
    run, widget, sent = start(handlers=handlers, workers=4)
    settle(run, widget, timeout=60)
    _click(widget, kind="select", job="train")
    details = _replies(sent, "details")[-1]["details"]
    assert details["mapped"] is True and details["status"] == "failed" and details["can"]["retry"] is True
    page = details["items"]
    assert page["known"] and page["total"] == page["matching"] == 450 and page["counts"] == {"finished": 447, "failed": 3}
    rows = page["rows"]
    assert len(rows) == 200 and page["offset"] == 0
    assert [r["job"] for r in rows[:4]] == ["train[5]", "train[300]", "train[449]", "train[0]"]
    first = rows[0]
    assert first["state"] == "failed" and first["attempts"] == 1 and first["duration"] is not None
    assert first["error"] == "ValueError: bad value 5" and first["can"] == {"retry": True, "rerun": True, "abort": False}
    assert rows[3]["can"]["retry"] is False
    _click(widget, kind="select", job="train", offset=400)
    page = _replies(sent, "details")[-1]["details"]["items"]
    assert page["offset"] == 400 and [r["job"] for r in page["rows"]][:2] == ["train[399]", "train[400]"]  # 3 failed first, then by index
    assert len(page["rows"]) == 50
    _click(widget, kind="select", job="train", state="failed")
    page = _replies(sent, "details")[-1]["details"]["items"]
    assert page["matching"] == 3 and [r["state"] for r in page["rows"]] == ["failed"] * 3
    _click(widget, kind="select", job="train", state="nonsense")
    assert "unknown display state 'nonsense'" in _replies(sent, "error")[-1]["error"]


def test_an_item_is_inspected_and_retried_through_the_widgets_messages():
    handlers, fail = sweep(6, fail={2})
    run, widget, sent = start(handlers=handlers)
    settle(run, widget)
    _click(widget, kind="select", job="train[2]")
    d = _replies(sent, "details")[-1]["details"]
    assert d["job"] == "train[2]" and d["item_of"] == "train" and d["status"] == "failed"
    assert "ValueError: bad value 2" in d["traceback"] and d["attempts"][0]["outcome"] == "failed"
    assert d["parents"] == ["grid"] and d["can"]["retry"] is True
    _click(widget, kind="select", job="train[1]")
    assert "item 1" in _replies(sent, "details")[-1]["details"]["stdout"]

    fail.clear()  # the fix
    _click(widget, kind="preview", action="retry", job="train[2]")
    preview = _replies(sent, "preview")[-1]
    assert preview["jobs"] == ["best", "train[2]"] and preview["count"] == 2 and preview["nodes"] == ["best", "train"]
    assert run.jobs["train[2]"].status == "failed", "a preview changes nothing"
    _click(widget, kind="action", action="retry", job="train[2]")
    settle(run, widget)
    assert _replies(sent, "done")[-1]["jobs"] == ["best", "train[2]"]
    assert run.succeeded and [len(run.jobs[f"train[{i}]"].attempts) for i in range(6)] == [1, 1, 2, 1, 1, 1]
    assert widget.items == {"train": {"finished": 6}} and widget.states["train"] == "finished"
    assert widget.counts == {"finished": 8}

    _click(widget, kind="preview", action="rerun", job="train[4]")
    assert _replies(sent, "preview")[-1]["jobs"] == ["best", "train[4]"]
    _click(widget, kind="action", action="rerun", job="train[4]")
    settle(run, widget)
    assert len(run.jobs["train[4]"].attempts) == 2 and widget.items == {"train": {"finished": 6}}


def test_retry_subtree_of_the_mapped_type_retries_every_failed_item_and_previews_name_them_in_order():
    handlers, fail = sweep(12, fail={3, 10})
    run, widget, sent = start(handlers=handlers)
    settle(run, widget)
    _click(widget, kind="preview", action="retry_failed")
    assert _replies(sent, "preview")[-1]["jobs"] == ["best", "train[3]", "train[10]"]  # numeric order
    _click(widget, kind="preview", action="abort", job="train")
    assert _replies(sent, "preview")[-1]["jobs"] == ["best"]  # what is unfinished under its items
    fail.clear()
    _click(widget, kind="action", action="retry", job="train")
    settle(run, widget)
    assert run.succeeded and widget.items == {"train": {"finished": 12}}
    assert [len(i.attempts) for i in run.jobs["train"].items].count(2) == 2


def test_a_widget_of_a_loaded_run_counts_its_items(tmp_path):
    handlers, _ = sweep(4, fail={1})
    journal = str(tmp_path / "journal.sqlite")
    first = ov.run(SWEEP, handlers, executor=ov.ThreadExecutor(), journal=journal).wait(10)
    loaded = ov.load_run(first.run_id, journal=journal)
    widget = loaded.widget
    assert widget.items == {"train": {"finished": 3, "failed": 1}}
    assert widget.counts == {"finished": 4, "failed": 1, "blocked": 1}


def test_the_panel_says_why_a_job_ran_or_was_reused(tmp_path):
    import overseer_nb as ov
    from overseer_nb.display.details import job_details

    journal = str(tmp_path / "j.sqlite")
    graph = {"a": [], "b": ["a"]}
    handlers = {"a": lambda job: 1, "b": lambda job: job.inputs["a"] + 1}
    first = ov.run(graph, handlers, executor=ov.ThreadExecutor(), journal=journal, cache=True).wait(10)
    again = ov.run(graph, handlers, executor=ov.ThreadExecutor(), journal=journal, cache=True).wait(10)
    assert job_details(first, "b")["explain"] == "ran: no earlier result"
    shown = job_details(again, "b")
    assert shown["explain"] == f"cached from run {first.run_id}" and shown["display_state"] == "cached"
    plain = ov.run(graph, handlers, executor=ov.ThreadExecutor(), journal=False).wait(10)
    assert job_details(plain, "b")["explain"] == ""
