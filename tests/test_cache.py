"""The cache (SPEC §13) on a real cluster, with handlers made as a notebook makes them.

Each test executes cell source in a ``__main__`` namespace, as IPython does, and
counts what really ran by the lines each handler appends to a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import overseer_nb as ov

GRAPH = {"load": [], "clean": ["load"], "total": ["clean"]}

CELL = """
import os
FACTOR = 2

def helper(x):
    return x * FACTOR

def note(job):
    with open(os.path.join(job.args["log"], job.type), "a") as f:
        f.write("ran\\n")

def load(job):
    note(job)
    return list(range(5))

def clean(job):
    note(job)
    return [helper(v) for v in job.inputs["load"]]

def total(job):
    note(job)
    return sum(job.inputs["clean"])
"""


def notebook(source: str = CELL) -> dict:
    """A namespace as a notebook's: ``__main__``, with ``source`` run in it."""
    namespace = {"__name__": "__main__"}
    exec(textwrap.dedent(source), namespace)
    return namespace


def handlers(ns: dict) -> dict:
    return {job: ns[job] for job in GRAPH}


def ran(log, job: str) -> int:
    path = os.path.join(log, job)
    return len(open(path).read().split()) if os.path.exists(path) else 0


@pytest.fixture
def where(tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    return {"journal": str(tmp_path / "j.sqlite"), "store": str(tmp_path / "store"), "log": str(log)}


def run(ns, where, client, **kwargs):
    args = {"log": where["log"], **kwargs.pop("args", {})}
    return ov.run(GRAPH, handlers(ns), args=args, cluster=client, journal=where["journal"], store=where["store"],
                  cache=True, **kwargs).wait(60)


@pytest.mark.cluster
def test_the_edit_and_rerun_loop_runs_only_what_changed(client, where):
    ns = notebook()
    first = run(ns, where, client)
    assert first.results["total"] == 20 and all(first.explain(j) == "ran: no earlier result" for j in GRAPH)

    again = run(ns, where, client)  # nothing changed: nothing runs
    assert again.display_states == dict.fromkeys(GRAPH, "cached") and again.results == first.results
    assert [ran(where["log"], j) for j in GRAPH] == [1, 1, 1]
    assert again.jobs["clean"].cached_from == first.run_id
    assert again.explain("total") == f"cached from run {first.run_id}"
    assert again.jobs["clean"].attempts == []

    exec("def clean(job):\n    note(job)\n    return [helper(v) + 1 for v in job.inputs['load']]", ns)
    edited = run(ns, where, client)  # a redefined handler: it and what depends on it run
    assert edited.display_states == {"load": "cached", "clean": "finished", "total": "finished"}
    assert edited.explain("clean") == "ran: the handler of 'clean' changed (its code)"
    assert edited.explain("total") == "ran: input 'clean' changed"
    assert edited.results["total"] == 25

    exec("FACTOR = 3", ns)
    scaled = run(ns, where, client)  # a global it reads, through a helper
    assert scaled.explain("clean") == "ran: the global FACTOR changed" and scaled.results["total"] == 35
    assert scaled.display_states["load"] == "cached"

    exec("def load(job):\n    note(job)\n    return list(range(4)) + [4]", ns)
    cutoff = run(ns, where, client)  # new code, same result: its children stay cached
    assert cutoff.explain("load") == "ran: the handler of 'load' changed (its code)"
    assert cutoff.display_states == {"load": "finished", "clean": "cached", "total": "cached"}

    moved = run(ns, where, client, args={"n": 1})
    assert moved.explain("load") == "ran: args changed (n)" and moved.display_states["total"] == "finished"
    assert [ran(where["log"], j) for j in GRAPH] == [3, 4, 4]

    plan = ov.run(GRAPH, handlers(ns), args={"log": where["log"], "n": 1}, journal=where["journal"],
                  cache=True, dry_run=True)  # says, runs nothing
    assert {row.job: row.plan for row in plan} == {j: f"would be cached from run {moved.run_id}" for j in GRAPH}
    exec("FACTOR = 4", ns)
    plan = ov.run(GRAPH, handlers(ns), args={"log": where["log"], "n": 1}, journal=where["journal"],
                  cache=True, dry_run=True)
    assert [row.plan for row in plan] == [f"would be cached from run {moved.run_id}",
                                          "would run: the global FACTOR changed",
                                          "would run: its input 'clean' is made again"]
    assert [ran(where["log"], j) for j in GRAPH] == [3, 4, 4]


@pytest.mark.cluster
def test_failed_jobs_are_never_reused_and_cache_false_always_runs(client, where):
    ns = notebook(CELL + "\ndef total(job):\n    note(job)\n    raise ValueError('broken')\n")
    first = run(ns, where, client)
    assert first.statuses["total"] == "failed"
    second = run(ns, where, client)
    assert second.statuses["total"] == "failed" and ran(where["log"], "total") == 2
    assert second.explain("total") == "ran: its earlier result is not available (failed, or gone from the store)"

    ns = notebook()
    ns["clean"] = ov.handler("clean", cache=False)(ns["clean"])
    run(ns, where, client)
    kept = run(ns, where, client)
    assert kept.explain("clean") == "ran: cache=False for 'clean'"
    assert kept.display_states["load"] == "cached" and kept.display_states["clean"] == "finished"
    assert kept.display_states["total"] == "cached"  # same input as before: reused
    rerun = kept.rerun("load")
    kept.wait(60)
    assert "load" in rerun and kept.explain("load") == "ran: rerun asked for it"


@pytest.mark.cluster
def test_big_results_are_compared_by_content(client, where):
    ns = notebook("""
import numpy as np
def load(job):
    return np.arange(1_000_000, dtype=float)  # 8 MB: through the result store
def clean(job):
    return job.inputs["load"] * 2
def total(job):
    return float(job.inputs["clean"].sum())
""")
    first = run(ns, where, client)
    assert first.jobs["load"].stored is not None and first.jobs["load"].stored.digest
    exec("def load(job):\n    return np.arange(1_000_000, dtype=float) + 0", ns)
    second = run(ns, where, client)
    assert second.display_states == {"load": "finished", "clean": "cached", "total": "cached"}
    assert second.results["total"] == first.results["total"]


KERNEL = CELL + """
import json, sys
import overseer_nb as ov
journal, store, log = sys.argv[1:4]
ov.use_cluster(engines=1)
run = ov.run({"load": [], "clean": ["load"], "total": ["clean"]}, {"load": load, "clean": clean, "total": total},
             args={"log": log}, journal=journal, store=store, cache=True).wait(120)
print(json.dumps({"states": run.display_states, "total": run.results["total"],
                  "why": run.explain("total")}))
ov.stop_cluster()
"""


@pytest.mark.cluster
@pytest.mark.slow
def test_the_cache_outlives_the_kernel(client, where, tmp_path):
    first = run(notebook(), where, client)
    script = tmp_path / "kernel.py"
    script.write_text(KERNEL)
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"))
    env.pop("OVERSEER_NB_JOURNAL", None)
    done = subprocess.run([sys.executable, str(script), where["journal"], where["store"], where["log"]],
                          capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["states"] == dict.fromkeys(GRAPH, "cached") and out["total"] == 20
    assert out["why"] == f"cached from run {first.run_id}"
    assert [ran(where["log"], j) for j in GRAPH] == [1, 1, 1]


def test_uncacheable_values_and_items_cached_one_by_one(tmp_path):
    import threading

    journal = str(tmp_path / "j.sqlite")
    ns = notebook("""
import threading
LOCK = threading.Lock()
GRID = [1, 2, 3]
def grid(job):
    return list(GRID)
def train(job):
    return job.inputs["grid"] * 10
def best(job):
    with LOCK:
        return sum(job.inputs["train"])
""")
    graph = {"grid": [], "train": [ov.each("grid")], "best": ["train"]}
    go = lambda: ov.run(graph, {j: ns[j] for j in graph}, executor=ov.ThreadExecutor(), journal=journal,  # noqa: E731
                        cache=True).wait(10)
    go()
    ns["GRID"] = [1, 2, 3, 4]  # one new value: one new item runs
    second = go()
    assert [second.jobs[f"train[{i}]"].display_state for i in range(4)] == ["cached"] * 3 + ["finished"]
    assert second.explain("train").startswith("3 items: cached from run")
    assert "cannot be cached: the value of 'LOCK' (lock) cannot be fingerprinted" in second.explain("best")
    assert second.results["best"] == 100
    assert threading  # the lock above is a real one
