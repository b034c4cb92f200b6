"""The plain-Python example runs as the README says, on a local cluster it starts and stops."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.cluster


def test_seed_graph_script_prints_every_job_finished():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "seed_graph.py")],
                         capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for job in ("start", "result1", "result2", "finish"):
        assert any(line.split()[:2] == [job, "finished"] for line in lines), out.stdout
    assert "results: {'start': 123, 'result1': 124, 'result2': 246, 'finish': 370}" in out.stdout
