"""The widget in a real browser: JupyterLab 4 and Notebook 7 on 127.0.0.1, Debian's Chromium.

Scenario: a job fails because its input file does not exist yet; the failed
and blocked nodes are coloured; a blocked node's tooltip says why it waits; the
traceback shows in the job panel as IPython's (``Cell In[1]``, the failing line
marked), and a click on the cell's place shows the cell; a later
cell creates the input; `Retry failed` turns the subtree finished on the same
<svg> element. No page request may leave 127.0.0.1. Screenshots go to
test-artifacts/.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"

if not Path(CHROMIUM).exists() or shutil.which("dot") is None:
    pytest.skip("needs /usr/bin/chromium and Graphviz dot", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

GRAPH = (
    '{"fetch": [], "parse": ["fetch"], "archive": ["fetch"], "summarize": ["parse"], '
    '"plot": ["parse"], "report": ["summarize", "plot"]}'
)
SUBTREE = ["parse", "plot", "report", "summarize"]

HANDLERS = '''
def fetch(job):
    return list(range(10))

def parse(job):
    with open(job.args["input"]) as f:  # fails until a later cell writes the file
        return f.read().split(",")

def archive(job):
    return len(job.inputs["fetch"])

def summarize(job):
    return len(job.inputs["parse"])

def plot(job):
    print("plotting", job.inputs["parse"])
    return "plot.png"

def report(job):
    return {"rows": job.inputs["summarize"], "figure": job.inputs["plot"]}

handlers = {"fetch": fetch, "parse": parse, "archive": archive, "summarize": summarize,
            "plot": plot, "report": report}
'''


def write_notebook(path: Path, *, cluster: bool) -> int:
    """The scenario notebook; returns how many cells run before the retry."""
    setup = ["import os", "import overseer_nb as ov", f'INPUT = os.path.abspath("{path.stem}-input.csv")']
    if cluster:
        setup.append("ov.use_cluster(engines=2)")
    setup.append(f"graph = ov.JobGraph({GRAPH})")
    executor = "" if cluster else ", executor=ov.ThreadExecutor()"
    cells = [
        "\n".join(setup) + "\n" + HANDLERS,
        f'run = ov.run(graph, handlers, args={{"input": INPUT}}{executor})\ndisplay(run)',
        "run.wait(120)\nrun.statuses",
        'with open(INPUT, "w") as f:\n    f.write("a,b,c")',
    ]
    if cluster:
        cells.append("ov.stop_cluster()")
    else:
        cells.append("display(run)  # a second view of the same run")
    notebook_of(path, cells)
    return 4 if cluster else 5


def notebook_of(path: Path, cells: list[str]) -> None:
    """Write a Python 3 notebook of ``cells`` (code) to ``path``."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def open_notebook(page, server, name: str, url: str = "/lab/tree/") -> None:
    """Open notebook ``name`` of the server's folder in ``page`` and wait until its kernel is ready."""
    page.goto(f"{server.base}{url}{name}?token={server.token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor", timeout=60_000)
    server.wait_kernel_ready(name)


@contextlib.contextmanager
def new_page(browser, shot: str):
    """A new page for the block; a full-page screenshot test-artifacts/<shot>-error.png if it fails; then closed."""
    page = browser.new_page()
    try:
        yield page
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{shot}-error.png"), full_page=True)
        raise
    finally:
        page.close()


# -- the Jupyter server -------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp: Path, *, kernels: Path | None = None):
        """A JupyterLab server in ``tmp``; ``kernels``: a folder of kernel specs that win over the installed ones."""
        self.root = tmp / "root"
        self.root.mkdir()
        self.port, self.token = _free_port(), "ovtest" + os.urandom(8).hex()
        env = dict(os.environ)
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
                     "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR"):
            (tmp / name).mkdir()
            env[name] = str(tmp / name)
        # the kernels' local clusters and journals stay inside the test's directory
        env["OVERSEER_NB_JOURNAL"] = ":memory:"
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        # the data dir is isolated, so point Jupyter at the installed extensions and kernels
        # (JUPYTER_PATH comes before JUPYTER_DATA_DIR in Jupyter's search: a spec of ours goes first)
        env["JUPYTER_PATH"] = os.pathsep.join([*([str(kernels)] if kernels else []), str(Path(sys.prefix) / "share" / "jupyter")])
        self.log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
             "--ServerApp.allow_root=True", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             "--LabApp.extension_manager=readonly"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                self.api("/api/status")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Jupyter server did not start; see {tmp / 'server.log'}")
                time.sleep(0.3)

    def api(self, path: str, method: str = "GET") -> object:
        req = urllib.request.Request(self.base + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def wait_kernel_ready(self, name: str, timeout: float = 60) -> None:
        """Until the notebook's kernel exists, is idle and the page is connected to it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s in self.api("/api/sessions"):
                k = s.get("kernel") or {}
                if s["path"].endswith(name) and k.get("execution_state") == "idle" and k.get("connections", 0) >= 1:
                    return
            time.sleep(0.3)
        raise TimeoutError(f"no idle, connected kernel for {name}")

    def stop(self) -> None:
        try:
            self.api("/api/shutdown", method="POST")
            self.proc.wait(20)
        except Exception:
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("jupyter"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    outside: list[str] = []
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium")), executable_path=CHROMIUM, headless=True,
            viewport={"width": 1400, "height": 1000},
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )

        def check(request):
            url = request.url
            if not url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:", "about:")):
                outside.append(url)

        context.on("request", check)
        context.outside = outside
        yield context
        context.close()  # Playwright ends the Chromium it started
    assert not outside, f"the page made requests outside 127.0.0.1: {outside[:5]}"


# -- the scenario ---------------------------------------------------------------------------------
def node_state(page, job: str) -> str:
    return page.locator(f'.overseer-graph g[data-job="{job}"]').get_attribute("data-state")


def node_fill(page, job: str) -> str:
    return page.evaluate(
        """job => getComputedStyle(document.querySelector(
            `.overseer-graph g[data-job="${job}"] > path, .overseer-graph g[data-job="${job}"] > polygon`)).fill""",
        job,
    )


def wait_fill(page, job: str, colour: str) -> None:
    """Until the node's computed fill is ``colour`` (fills change with a short transition)."""
    for _ in range(50):
        if node_fill(page, job) == colour:
            return
        page.wait_for_timeout(50)
    assert node_fill(page, job) == colour


def rgb(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return "rgb({}, {}, {})".format(*(int(h[i:i + 2], 16) for i in (0, 2, 4)))


def wait_states(page, states: dict[str, str], timeout: float = 90) -> None:
    page.wait_for_function(
        """want => Object.entries(want).every(([job, s]) => {
            const g = document.querySelector(`.overseer-graph g[data-job="${job}"]`);
            return g && g.getAttribute("data-state") === s; })""",
        arg=states, timeout=timeout * 1000,
    )


def run_cells(page, count: int, first: int = 0) -> None:
    """Run ``count`` cells from cell ``first`` with Shift+Enter, as a user would."""
    page.locator(".jp-Notebook .jp-Cell").nth(first).locator(".jp-InputArea-editor").click()
    for _ in range(count):
        page.keyboard.press("Shift+Enter")
        page.wait_for_timeout(150)
    page.wait_for_function(
        """([first, n]) => {
            const prompts = [...document.querySelectorAll(".jp-Notebook .jp-Cell .jp-InputPrompt")];
            return prompts.slice(first, first + n).every(p => /\\[\\d+\\]/.test(p.textContent)); }""",
        arg=[first, count], timeout=120_000,
    )


def scenario(page, server, name: str, url: str, *, cluster: bool, shot: str) -> None:
    from overseer_nb.display import STATE_STYLE

    nb_path = server.root / name
    before_retry = write_notebook(nb_path, cluster=cluster)
    open_notebook(page, server, name, url)
    run_cells(page, before_retry)

    wait_states(page, {"fetch": "finished", "archive": "finished", "parse": "failed",
                       "summarize": "blocked", "plot": "blocked", "report": "blocked"})
    wait_fill(page, "parse", rgb(STATE_STYLE["failed"]["fill"]))
    wait_fill(page, "report", rgb(STATE_STYLE["blocked"]["fill"]))
    wait_fill(page, "fetch", rgb(STATE_STYLE["finished"]["fill"]))
    views = 1 if cluster else 2
    page.wait_for_function(f"() => document.querySelectorAll('.overseer-graph').length === {views}")
    root = page.locator(".overseer-graph").first
    page.wait_for_function("() => document.querySelector('.overseer-graph .ov-counts').textContent.includes('1 failed')")
    assert "2 / 6 finished" in root.locator(".ov-progress").text_content()
    # the static picture saved for readers without a kernel is hidden while the widget lives
    pictures = page.locator('img[src*="overseer-static"]')
    assert pictures.count() == views
    assert not any(pictures.nth(i).is_visible() for i in range(views))
    page.evaluate("() => { document.querySelector('.overseer-graph .ov-canvas svg').__ovMark = 'same'; }")

    # inspect the failed node: its traceback reads as IPython's, the failing line marked
    root.locator('g[data-job="parse"]').click()
    panel = root.locator(".ov-panel")
    panel.locator(".ov-traceback pre").wait_for(timeout=10_000)
    traceback = panel.locator(".ov-traceback pre").text_content()
    assert "FileNotFoundError" in traceback and "input.csv" in traceback
    source = json.loads(nb_path.read_text())["cells"][0]["source"]
    source = (source if isinstance(source, str) else "".join(source)).splitlines()
    defined = source.index("def parse(job):") + 1
    failing = defined + 1
    assert f"Cell In[1], line {failing}, in parse" in traceback and "overseer_nb" not in traceback
    arrow = "-" * (5 - len(str(failing))) + f"> {failing}"  # IPython's: ----> 9, ---> 10
    assert panel.locator(".ov-traceback .ov-tb-here").all_text_contents() == [
        f'{arrow}     with open(job.args["input"]) as f:  # fails until a later cell writes the file']
    assert panel.locator(".ov-traceback .ov-tb-here").evaluate("e => getComputedStyle(e).fontWeight") == "600"
    assert panel.locator(".ov-where").text_content() == f"handler: cell In[1], line {defined}"
    assert panel.locator(".ov-attempts tbody tr").count() == 1
    assert panel.get_by_role("button", name="Retry subtree").is_enabled()
    assert panel.get_by_role("button", name="Rerun from here").is_visible()
    assert panel.get_by_role("button", name="Abort").is_disabled()

    ARTIFACTS.mkdir(exist_ok=True)
    page.add_style_tag(content=".Toastify, .Toastify__toast-container { display: none !important; }")  # Jupyter's own notices, not the widget
    root.screenshot(path=str(ARTIFACTS / f"{shot}-failed.png"))

    # a click on a cell's place shows that cell
    page.evaluate("() => document.querySelector('.jp-Notebook .jp-Cell').scrollIntoView()")
    panel.locator(".ov-traceback .ov-tb-where.ov-jump").first.click()
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-Notebook .jp-Cell')[0].style.outline.includes('solid')")

    # a blocked node's tooltip says what it waits for (run.why, asked when the pointer rests on it)
    root.locator('g[data-job="summarize"]').hover()
    tip = root.locator(".ov-tooltip")
    tip.wait_for(state="visible", timeout=10_000)
    assert tip.text_content() == "blocked by 'parse' failed; retry it to go on"
    page.mouse.move(0, 0)
    tip.wait_for(state="hidden", timeout=10_000)

    # the preview of what a retry runs again, then the retry itself
    retry = root.get_by_role("button", name="Retry failed")
    retry.hover()
    page.wait_for_function("() => document.querySelectorAll('.overseer-graph g.ov-preview').length === 4")
    previewed = sorted(page.evaluate(
        "() => [...document.querySelectorAll('.overseer-graph g.ov-preview')].map(g => g.dataset.job)"))
    assert previewed == SUBTREE
    root.screenshot(path=str(ARTIFACTS / f"{shot}-preview.png"))
    assert root.get_by_role("button", name="Cancel").count() == 1
    retry.click()
    wait_states(page, {job: "finished" for job in ["fetch", "archive", *SUBTREE]})
    wait_fill(page, "parse", rgb(STATE_STYLE["finished"]["fill"]))
    assert page.evaluate("() => document.querySelector('.overseer-graph .ov-canvas svg').__ovMark") == "same"
    # every view of the run follows it
    assert page.evaluate(
        "() => [...document.querySelectorAll('.overseer-graph g[data-job=\"report\"]')].map(g => g.dataset.state)"
    ) == ["finished"] * views
    page.wait_for_function("() => document.querySelector('.overseer-graph .ov-progress').textContent.includes('6 / 6')")
    page.mouse.move(0, 0)
    root.screenshot(path=str(ARTIFACTS / f"{shot}-retried.png"))

    if cluster:
        run_cells(page, 1, first=before_retry)  # ov.stop_cluster()

    # saved, the notebook keeps a static picture of the last state and no error
    saved = None
    for _ in range(40):
        page.keyboard.press("Control+s")
        page.wait_for_timeout(500)
        saved = json.loads(nb_path.read_text())
        svgs = ["".join(o["data"]["image/svg+xml"]) for c in saved["cells"] for o in c.get("outputs", [])
                if "image/svg+xml" in o.get("data", {})]
        if len(svgs) == views and all("6/6 finished" in svg for svg in svgs):
            break
    outputs = [o for c in saved["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"], outputs
    assert len(svgs) == views and all("6/6 finished" in svg for svg in svgs), "saved pictures show the last state"
    assert "application/vnd.jupyter.widget-view+json" in json.dumps(saved)


def test_jupyterlab_retry_failed(server, browser):
    with new_page(browser, "lab") as page:
        scenario(page, server, "lab_scenario.ipynb", "/lab/tree/", cluster=False, shot="lab")
    picture = ROOT / "docs" / "widget.png"
    if not picture.exists() or os.environ.get("OVERSEER_NB_UPDATE_PICTURE"):
        shutil.copy(ARTIFACTS / "lab-failed.png", picture)  # the README's picture of the panel


@pytest.mark.cluster
def test_notebook7_retry_failed_on_a_cluster(server, browser):
    with new_page(browser, "notebook7") as page:
        scenario(page, server, "nb7_scenario.ipynb", "/notebooks/", cluster=True, shot="notebook7")
