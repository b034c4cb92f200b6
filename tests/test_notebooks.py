"""The demo notebooks (notebooks/*.ipynb), executed top to bottom by nbclient in a real kernel.

Each notebook ends with a cell that asserts its runs ended as its text says and
prints a line with "as described"; these tests check that line, that no cell
raised or was left unexecuted, and that the clusters the notebooks start are
stopped quietly. Each kernel gets its own IPython directory and journal file,
so the notebooks' clusters, profiles and runs stay inside the test's directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NAMES = [
    "01-quickstart.ipynb",
    "02-failures-and-retries.ipynb",
    "03-model-sweep.ipynb",
    "04-history-and-resume.ipynb",
    "05-scaling-out.ipynb",
]
DEMO_PROFILE = "overseer-demo"  # the ipcluster profile 05-scaling-out.ipynb starts and stops


def test_the_demo_notebooks_are_the_five_listed():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


EXECUTED = "02-failures-and-retries.ipynb"  # kept with its outputs: a reader on GitHub sees the failure


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_with_outputs_cleared(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and nb.cells[0].cell_type == "markdown", "a notebook opens with a title and what it shows"
    if name != EXECUTED:
        assert [c.execution_count for c in code] == [None] * len(code)
        assert [c.outputs for c in code] == [[]] * len(code)
    assert any("%load_ext overseer_nb" in c.source for c in code)
    assert "as described" in code[-1].source + (code[-2].source if len(code) > 1 else "")


def test_the_failures_notebook_is_stored_executed_and_its_snapshot_shows_the_failure():
    """Stored by ``scripts/execute_notebook.py``: every cell ran in order, none raised, and the picture
    where the text describes the failure shows it, though the run it shows was fixed further down."""
    from overseer_nb.display.dot import STATE_STYLE

    nb = nbformat.read(NOTEBOOKS / EXECUTED, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), \
        "run python scripts/execute_notebook.py notebooks/02-failures-and-retries.ipynb"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not [o for c in code for o in c.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    snap = next(c for c in code if "run.snapshot()" in c.source)
    svg = "".join(o["data"]["image/svg+xml"] for o in snap.outputs if "image/svg+xml" in o.get("data", {}))
    assert STATE_STYLE["failed"]["fill"] in svg and STATE_STYLE["blocked"]["fill"] in svg, "the snapshot shows the failure"
    assert "1 failed" in "".join(o["data"]["text/plain"] for o in snap.outputs)
    final = next(c for c in code if "as described" in c.source)
    assert "as described" in stream_text(final, "stdout")


def isolated_env(tmp_path: Path) -> dict[str, str]:
    """Environment variables that keep a notebook's kernel, clusters and journal in ``tmp_path``."""
    return {
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "OVERSEER_NB_JOURNAL": str(tmp_path / "journal.sqlite"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "OVERSEER_NB_PRESTART": "1",  # as a user has it (conftest turns it off for other tests)
    }


def stop_demo_profile(env: dict[str, str]) -> None:
    """Stop the notebook's ipcluster if a failure left it running (a no-op otherwise)."""
    subprocess.run([sys.executable, "-m", "ipyparallel.cluster", "stop", f"--profile={DEMO_PROFILE}"],
                   env={**os.environ, **env}, capture_output=True, timeout=60, check=False)


def without_ipcluster_on_path() -> str:
    """PATH without the folders that hold ``ipcluster``: a Jupyter whose environment is not activated."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(f for f in folders if f and not shutil.which("ipcluster", path=f))


def stream_text(cell, name: str | None = None) -> str:
    return "".join(o.get("text", "") for o in cell.outputs
                   if o.output_type == "stream" and (name is None or o.name == name))


def all_text(cell) -> str:
    return stream_text(cell) + "".join(
        o.get("data", {}).get("text/plain", "") for o in cell.outputs if o.output_type != "stream"
    )


def execute(name: str, tmp_path: Path, monkeypatch) -> nbformat.NotebookNode:
    env = isolated_env(tmp_path)
    if name.startswith("05"):  # it starts and stops its cluster with the kernel's own Python
        env["PATH"] = without_ipcluster_on_path()
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the kernel inherits them
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=240, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    try:
        client.execute()
    finally:
        if name.startswith("05"):
            stop_demo_profile(env)
    nbformat.write(nb, tmp_path / name)  # kept for reading when a test fails
    return nb


@pytest.mark.slow
@pytest.mark.cluster
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    nb = execute(name, tmp_path, monkeypatch)
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [(c.source[:60], o.ename, o.evalue) for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{name}: cells raised: {errors}; executed copy in {tmp_path}"
    assert all(c.execution_count for c in code), f"{name}: a cell was not executed"
    described = [c for c in code if "as described" in c.source]
    assert described and "as described" in stream_text(described[-1], "stdout"), (
        f"{name}: the final check did not confirm the runs ended as the text says"
    )
    # a run's live widget is shown wherever a run is
    widgets = [o for c in code for o in c.outputs
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
               and o["data"].get("text/plain", "").startswith("Run ")]
    assert widgets, f"{name}: no live run widget was displayed"
    # the cluster is stopped at the end, without ipyparallel's engine logs in the cell
    last = code[-1] if not name.startswith("05") else next(c for c in code if 'ipcluster("stop"' in c.source)
    assert "stop" in last.source
    stop_cells = [c for c in code if "--stop" in c.source]
    for cell in stop_cells:
        text = all_text(cell)
        assert "Output for" not in text and "engine set stopped" not in text, text[:500]
    if name.startswith("05"):
        assert "disconnected from (still running)" in all_text(stop_cells[-1])
        assert "Stopping cluster" in all_text(last)


def test_demo_script_parses_and_listens_on_localhost_by_default():
    script = (ROOT / "scripts" / "demo.sh").read_text()
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "demo.sh")]).returncode == 0
    assert "ip=127.0.0.1" in script and "scripts/setup.sh" in script
    assert "scripts/run_quickstart.py notebooks/01-quickstart.ipynb" in script


@pytest.mark.slow
@pytest.mark.cluster
def test_headless_demo_prints_the_final_statuses(tmp_path):
    """What `bash scripts/demo.sh --headless` runs after the set-up step."""
    env = {**os.environ, **isolated_env(tmp_path)}
    done = subprocess.run([sys.executable, "scripts/run_quickstart.py", "notebooks/01-quickstart.ipynb"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "final statuses:" in done.stdout
    assert done.stdout.count("finished") >= 8, done.stdout  # two runs of four jobs


if __name__ == "__main__":  # pragma: no cover - for running one notebook by hand
    sys.exit(pytest.main([__file__, "-k", sys.argv[1] if len(sys.argv) > 1 else ""]))
