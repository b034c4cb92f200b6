"""Handlers written as in a notebook (in ``__main__``) work on the engines, and a redefinition is what a retry runs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.cluster

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import overseer_nb as ov

    ov.use_cluster(profile=sys.argv[1], cluster_id=sys.argv[2])

    SCALE = 10                      # a notebook global

    def helper(x):                  # a helper function from another cell
        return x * SCALE

    def make_adder(k):              # a closure
        def add(job):
            return job.inputs["start"] + k
        return add

    def start(job):
        return helper(job.args["n"])

    def double(job):
        return job.inputs["start"] * 2 + OFFSET     # OFFSET is not defined yet

    graph = ov.JobGraph({"start": [], "double": ["start"], "plus": ["start"]})
    run = ov.run(graph, {"start": start, "double": double, "plus": make_adder(5)}, args={"n": 3}).wait(60)
    print(json.dumps({"statuses": run.statuses, "error": run.jobs["double"].error.ename}))

    OFFSET = 1

    def double(job):                # the fix, as a re-run cell would define it
        return job.inputs["start"] * 2 + OFFSET + 1000

    print(json.dumps(sorted(run.retry())))
    run.wait(60)
    print(json.dumps({"statuses": run.statuses, "results": run.results}))
    """
)


def run_as_main(code: str, shared_cluster, tmp_path) -> list:
    """Run ``code`` as a script (its functions live in ``__main__``) on the shared cluster.

    Returns the JSON values of its last printed lines, one per line.
    """
    cluster, _client = shared_cluster
    script = tmp_path / "notebook.py"
    script.write_text(code)
    out = subprocess.run(
        [sys.executable, str(script), cluster.profile, cluster.cluster_id],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.strip().splitlines() if line.startswith(("{", "["))]


def test_notebook_style_handlers_globals_helpers_closures_and_redefinition(shared_cluster, tmp_path):
    first, retried, last = run_as_main(SCRIPT, shared_cluster, tmp_path)[-3:]
    assert first == {
        "statuses": {"start": "finished", "double": "failed", "plus": "finished"},
        "error": "NameError",
    }
    assert retried == ["double"]
    assert last["statuses"] == {"start": "finished", "double": "finished", "plus": "finished"}
    assert last["results"] == {"start": 30, "double": 1061, "plus": 35}


def test_import_is_light():
    code = (
        "import sys, overseer_nb\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('ipyparallel', 'zmq', 'ipywidgets', 'anywidget', 'IPython', 'graphviz'))\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


GLOBAL_FIX = textwrap.dedent(
    """
    import json, sys
    import overseer_nb as ov

    ov.use_cluster(profile=sys.argv[1], cluster_id=sys.argv[2])
    DIVISOR = 0

    def share(job):
        return 10 / DIVISOR

    run = ov.run({"share": [], "again": ["share"]}, {"share": share, "again": share}).wait(60)
    print(json.dumps(run.statuses))
    DIVISOR = 5                     # the fix is a global, the function is the same object
    run.retry()
    print(json.dumps(run.wait(60).results))
    """
)


def test_a_global_fixed_in_a_cell_is_shipped_again_on_retry(shared_cluster, tmp_path):
    first, last = run_as_main(GLOBAL_FIX, shared_cluster, tmp_path)[-2:]
    assert first == {"share": "failed", "again": "unstarted"}
    assert last == {"share": 2.0, "again": 2.0}
