"""A small notebook using the magics, executed top to bottom by nbclient in a real kernel."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CELLS = [
    "%load_ext overseer_nb",
    "%overseer_cluster --engines 2",
    "%%overseer_graph pipeline\nstart:\nresult1: start\nresult2: start\nfinish: result1, result2",
    "SCALE = 10\n\ndef scaled(x):\n    return SCALE * x",
    "%%overseer_handlers pipeline\n"
    "def start(job):\n    return job.args['n']\n"
    "def result1(job):\n    return scaled(job.inputs['start'])\n"
    "def result2(job):\n    return 1 / 0\n"
    "def finish(job):\n    return job.inputs['result1'] + job.inputs['result2']",
    "run = %overseer_run pipeline --args '{\"n\": 4}' --wait",
    "print(run.statuses)",
    "%%overseer_handlers pipeline\ndef result2(job):\n    return scaled(job.inputs['start']) + 1",
    "%overseer_retry\nrun.wait(60)\nprint(run.results)",
    "%overseer_status",
    "%overseer_cluster --stop\nimport overseer_nb.execution\nprint(overseer_nb.execution.describe())",
]


def text_of(cell) -> str:
    parts = []
    for out in cell.outputs:
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_notebook_runs_end_to_end_with_a_real_kernel(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    path = tmp_path / "magics.ipynb"
    nbformat.write(nb, path)
    client = NotebookClient(
        nbformat.read(path, as_version=4), timeout=120, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    executed = client.execute()
    cells = executed.cells
    assert "2 engines on a local cluster started by overseer_nb" in text_of(cells[1])
    assert "pipeline: bound start, result1, result2, finish" in text_of(cells[4])
    assert "'result2': 'failed'" in text_of(cells[6]) and "'finish': 'unstarted'" in text_of(cells[6])
    assert "pipeline: bound result2" in text_of(cells[7])
    assert "retrying result2, finish" in text_of(cells[8])
    assert "{'start': 4, 'result1': 40, 'result2': 41, 'finish': 81}" in text_of(cells[8])
    assert "finished" in text_of(cells[9])
    assert "stopped: 2 engines on a local cluster" in text_of(cells[10])
    assert "{'connected': False}" in text_of(cells[10])
