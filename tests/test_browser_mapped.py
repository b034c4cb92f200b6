"""A mapped job type in a real JupyterLab 4 with Debian's Chromium, on a local ipyparallel cluster.

Scenario: ``train: each grid`` maps over 5 values on a 2-engine cluster
started by the notebook; ``train[2]`` fails until a later cell sets a global
flag. The mapped type is one node showing ``4/5``, ``data-items="5"`` and a bar
with a failed segment; clicking it lists the items, ``train[2]`` failed with
its error; clicking the row shows that item's traceback; after the fix, the
row's `Retry` button retries that item alone and the node turns finished
(``5/5``). The server and browser fixtures are those of tests/test_browser.py;
screenshots go to test-artifacts/.
"""

from __future__ import annotations

import pytest
from test_browser import (  # noqa: F401 - fixtures
    ARTIFACTS,
    browser,
    notebook_of,
    open_notebook,
    rgb,
    run_cells,
    server,
    wait_fill,
    wait_states,
)

pytestmark = [pytest.mark.browser, pytest.mark.cluster]

SETUP = '''
import overseer_nb as ov
ov.use_cluster(engines=2)
FIXED = False  # a later cell fixes the handler

def grid(job):
    return [10, 20, 30, 40, 50]

def train(job):
    if job.index == 2 and not FIXED:
        raise ValueError(f"value {job.inputs['grid']} is bad")
    return job.inputs["grid"] * 2

def best(job):
    return max(job.inputs["train"])

handlers = {"grid": grid, "train": train, "best": best}
'''
START = 'run = ov.run({"grid": [], "train": [ov.each("grid")], "best": ["train"]}, handlers)\ndisplay(run)'
WAIT = "run.wait(60)\nrun.statuses"
FIX = "FIXED = True"
STOP = "ov.stop_cluster()"


def test_a_mapped_type_in_jupyterlab_on_a_cluster(server, browser):  # noqa: F811 - the imported fixtures
    from overseer_nb.display import STATE_STYLE

    name = "mapped.ipynb"
    notebook_of(server.root / name, [SETUP, START, WAIT, FIX, STOP])
    page = browser.new_page()
    try:
        open_notebook(page, server, name)
        run_cells(page, 3)

        # one node for the mapped type: its state, its item count and its bar
        wait_states(page, {"grid": "finished", "train": "failed", "best": "blocked"})
        root = page.locator(".overseer-graph").first
        train = root.locator('g[data-job="train"]')
        page.wait_for_function(
            "() => document.querySelector('.overseer-graph g[data-job=\"train\"]')?.getAttribute('data-items') === '5'")
        assert "overseer-mapped" in train.get_attribute("class").split()
        assert train.locator("text.ov-items-count").text_content() == "4/5"
        assert train.locator('rect.ov-seg[data-state="failed"]').count() == 1
        assert train.locator('rect.ov-seg[data-state="finished"]').count() == 1
        assert root.locator("g[data-job]").count() == 3
        wait_fill(page, "train", rgb(STATE_STYLE["failed"]["fill"]))
        # the header counts items as jobs: grid and 4 items finished, of 7
        page.wait_for_function("() => document.querySelector('.overseer-graph .ov-counts').textContent.includes('1 failed')")
        assert "5 / 7 finished" in root.locator(".ov-progress").text_content()

        # the panel lists the items; the failed one first, with its error
        train.click()
        panel = root.locator(".ov-panel")
        row = panel.locator('tr[data-job="train[2]"]')
        row.wait_for(timeout=10_000)
        assert row.get_attribute("data-state") == "failed"
        assert panel.locator("tbody tr").first.get_attribute("data-job") == "train[2]"
        assert panel.locator("tbody tr").count() == 5
        assert "ValueError: value 30 is bad" in row.locator(".ov-item-error").text_content()
        assert panel.locator('tr[data-job="train[0]"] button.ov-item-retry').is_disabled()
        ARTIFACTS.mkdir(exist_ok=True)
        root.screenshot(path=str(ARTIFACTS / "mapped-failed.png"))

        # an item's own panel: attempts and traceback, and back to the list
        row.locator(".ov-item-name").click()
        panel.locator(".ov-traceback pre").wait_for(timeout=10_000)
        assert panel.locator(".ov-panel-title").text_content() == "train[2]"
        assert "value 30 is bad" in panel.locator(".ov-traceback pre").text_content()
        assert panel.locator(".ov-attempts tbody tr").count() == 1
        assert "ov-selected" in train.get_attribute("class").split()
        panel.locator("button.ov-back").click()
        row.wait_for(timeout=10_000)

        # fix the handler, then retry the item from its row
        run_cells(page, 1, first=3)
        retry = row.get_by_role("button", name="Retry train[2]")
        retry.hover()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.overseer-graph g.ov-preview')].map(g => g.dataset.job).sort().join() === 'best,train'")
        retry.click()
        wait_states(page, {"train": "finished", "best": "finished"}, timeout=60)
        page.wait_for_function(
            "() => document.querySelector('.overseer-graph g[data-job=\"train\"] text.ov-items-count').textContent === '5/5'")
        assert train.get_attribute("data-items") == "5"
        wait_fill(page, "train", rgb(STATE_STYLE["finished"]["fill"]))
        page.wait_for_function("() => document.querySelector('.overseer-graph .ov-progress').textContent.includes('7 / 7')")
        page.mouse.move(0, 0)  # the list is not redrawn under the pointer
        panel.locator('tr[data-job="train[2]"][data-state="finished"]').wait_for(timeout=10_000)
        root.screenshot(path=str(ARTIFACTS / "mapped-retried.png"))
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "mapped-error.png"), full_page=True)
        raise
    finally:
        try:
            run_cells(page, 1, first=4)  # ov.stop_cluster()
        finally:
            page.close()
