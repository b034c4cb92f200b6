"""The cache in a real JupyterLab 4 with Debian's Chromium: the ``cached`` colour and the panel's why.

Scenario: a graph runs twice with ``cache=True`` (jobs on threads of the
kernel, a journal in the test's folder); the second run's widget shows every
node in the ``cached`` colour, the header counts them as done, and the job
panel says which run the result came from. The server and browser fixtures
are those of tests/test_browser.py; a screenshot goes to test-artifacts/.
"""

from __future__ import annotations

import pytest
from test_browser import (  # noqa: F401 - fixtures
    ARTIFACTS,
    browser,
    new_page,
    notebook_of,
    open_notebook,
    rgb,
    run_cells,
    server,
    wait_fill,
    wait_states,
)

pytestmark = pytest.mark.browser

SETUP = '''
import os
import overseer_nb as ov
JOURNAL = os.path.abspath("cache-journal.sqlite")
graph = {"load": [], "clean": ["load"], "total": ["clean"]}
def load(job):
    return list(range(5))
def clean(job):
    return [v * 2 for v in job.inputs["load"]]
def total(job):
    return sum(job.inputs["clean"])
handlers = {"load": load, "clean": clean, "total": total}
first = ov.run(graph, handlers, executor=ov.ThreadExecutor(), journal=JOURNAL, cache=True).wait(30)
'''
SECOND = "again = ov.run(graph, handlers, executor=ov.ThreadExecutor(), journal=JOURNAL, cache=True)\ndisplay(again)"


def test_cached_jobs_have_their_colour_and_say_where_they_came_from(server, browser):  # noqa: F811
    from overseer_nb.display import STATE_STYLE

    name = "cache.ipynb"
    notebook_of(server.root / name, [SETUP, SECOND, "again.wait(30)"])
    with new_page(browser, "cached") as page:
        open_notebook(page, server, name)
        run_cells(page, 3)
        wait_states(page, dict.fromkeys(["load", "clean", "total"], "cached"), timeout=60)
        for job in ("load", "clean", "total"):
            wait_fill(page, job, rgb(STATE_STYLE["cached"]["fill"]))
        root = page.locator(".overseer-graph").first
        page.wait_for_function("() => document.querySelector('.overseer-graph .ov-progress').textContent.includes('3 / 3')")
        assert "3 cached" in root.locator(".ov-counts").text_content()
        assert root.locator('.ov-legend [data-state="cached"], .ov-legend svg').count() >= 1
        root.locator('g[data-job="clean"]').click()
        why = root.locator(".ov-panel .ov-explain")
        why.wait_for(timeout=10_000)
        assert why.text_content().startswith("cached from run ")
        ARTIFACTS.mkdir(exist_ok=True)
        root.screenshot(path=str(ARTIFACTS / "cached.png"))
