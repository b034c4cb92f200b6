"""The demo notebooks in a real JupyterLab 4 with Debian's Chromium: Run All Cells, then check.

For each notebook: every cell ran without an error (read from the saved
``.ipynb``, since in the page an exception looks like any stderr), every live
run widget rendered its graph (an ``.overseer-graph`` holding an ``svg`` with
nodes), and no request of the page left 127.0.0.1 (the ``browser`` fixture).
The Jupyter server and browser helpers are those of tests/test_browser.py.
A screenshot of the model sweep mid-run goes to test-artifacts/ (and to
docs/widget-running.png when that is missing or OVERSEER_NB_UPDATE_PICTURE is set).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_browser import ARTIFACTS, ROOT, Server, browser  # noqa: F401 - browser is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.cluster, pytest.mark.slow]

NOTEBOOKS = ROOT / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A JupyterLab server whose kernels journal to a file (04 reads the journal from a second process)."""
    home = tmp_path_factory.mktemp("jupyter-demos")
    # This python3 spec, first in the kernel spec search, gives the kernels a journal
    # file instead of the test suite's in-memory one.
    spec = home / "kernelspecs" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        # and starts local clusters at %load_ext as a user's kernel does (conftest turns it off)
        "env": {"OVERSEER_NB_JOURNAL": str(home / "journal.sqlite"), "OVERSEER_NB_PRESTART": "1"},
    }))
    srv = Server(home, kernels=home / "kernelspecs")
    # Render every cell (no windowing), so every widget output is in the page to be checked,
    # and no news prompt over the screenshots.
    settings = home / "JUPYTERLAB_SETTINGS_DIR"
    for plugin, values in {"notebook-extension/tracker": {"windowingMode": "none"},
                           "apputils-extension/notification": {"fetchNews": "false"}}.items():
        target = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    yield srv
    # 05 stops its ipcluster itself; this only matters if it failed half-way
    subprocess.run([shutil.which("ipcluster") or "ipcluster", "stop", "--profile=overseer-demo"],
                   env={**os.environ, "IPYTHONDIR": str(home / "IPYTHONDIR")},
                   capture_output=True, timeout=60, check=False)
    srv.stop()


def run_all(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def save_when_executed(page, path: Path, timeout: float = 240) -> dict:
    """Save the notebook from the page until every code cell has run; return the saved JSON.

    Read from the saved file, not the page: the file holds every cell's execution
    count and outputs, whatever the page has scrolled into view.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.keyboard.press("Control+s")
        page.wait_for_timeout(1000)
        saved = json.loads(path.read_text())
        code = [c for c in saved["cells"] if c["cell_type"] == "code"]
        if all(c.get("execution_count") for c in code) and not page.locator(
            ".jp-Notebook .jp-InputPrompt", has_text="[*]"
        ).count():
            return saved
    raise AssertionError(f"{path.name}: not every cell ran within {timeout} s")


def shoot_running_sweep(page) -> None:
    """Screenshot the model sweep's widget while its training jobs run."""
    try:
        page.wait_for_selector('.overseer-graph g[data-state="started"]:not([data-job="load"])', timeout=90_000)
    except Exception:
        return  # the sweep was too quick to catch; the checks below still run
    page.wait_for_timeout(700)  # let a second job start and the elapsed time tick
    root = page.locator(".overseer-graph").last
    root.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "notebook-03-running.png"
    root.screenshot(path=str(shot))
    picture = ROOT / "docs" / "widget-running.png"
    if not picture.exists() or os.environ.get("OVERSEER_NB_UPDATE_PICTURE"):
        shutil.copy(shot, picture)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_in_jupyterlab(server, browser, name):  # noqa: F811 - the imported fixture
    shutil.copy(NOTEBOOKS / name, server.root / name)
    path = server.root / name
    page = browser.new_page()
    try:
        # a workspace of its own, so the page does not reopen the notebooks tested before
        page.goto(f"{server.base}/lab/workspaces/demo-{name[:2]}/tree/{name}?token={server.token}")
        page.wait_for_selector(".jp-Notebook .jp-CodeCell .jp-InputArea-editor", timeout=60_000)
        server.wait_kernel_ready(name)
        run_all(page)
        if name.startswith("03"):
            shoot_running_sweep(page)
        saved = save_when_executed(page, path)

        outputs = [o for c in saved["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
        errors = [(o["ename"], o["evalue"]) for o in outputs if o["output_type"] == "error"]
        assert not errors, f"{name}: {errors}"
        # the last check cell of each notebook confirms its runs ended as its text says
        assert any("as described" in "".join(o.get("text", "")) for o in outputs if o["output_type"] == "stream")
        run_widgets = [o for o in outputs if WIDGET_MIME in o.get("data", {})
                       and "".join(o["data"].get("text/plain", "")).startswith("Run ")]
        assert run_widgets, f"{name} shows no live run widget"
        page.wait_for_function(
            """n => {
                const roots = [...document.querySelectorAll(".overseer-graph")];
                return roots.length === n && roots.every(r => r.querySelector("svg g[data-job]")); }""",
            arg=len(run_widgets), timeout=30_000,
        )
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"notebook-{name[:2]}.png"), full_page=True)
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"notebook-{name[:2]}-error.png"), full_page=True)
        raise
    finally:
        page.close()
        for session in server.api("/api/sessions"):
            if session["path"].endswith(name):
                server.api(f"/api/sessions/{session['id']}", method="DELETE")
