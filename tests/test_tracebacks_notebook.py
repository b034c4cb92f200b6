"""In a real kernel (nbclient): a handler cell that raises, on the engines of a real cluster and on threads.

The traceback reads as IPython's: ``Cell In[2], line N, in clean`` with the
failing line marked ``---->`` among its neighbours, a module's frame as
``File ".../pipeline_mod.py", line 5, in parse``, none of overseer_nb's,
IPython's, ipykernel's or ipyparallel's frames, no colour codes; both
executors give the same text, and the journal keeps it. The panel's data
says where the handler was defined and, once a later cell redefines it, that
it changed since the attempt shown.
"""

from __future__ import annotations

import json
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

MODULE = '''\
def rows():
    return ["1", "2", "x"]

def parse(row):
    return int(row)  # 'x' is no number
'''

SETUP = """\
import json, sys
import cloudpickle
import overseer_nb as ov
from overseer_nb.display.details import job_details
sys.path.insert(0, {folder!r})
import pipeline_mod
cloudpickle.register_pickle_by_value(pipeline_mod)  # the engines get its code, not an import
ov.use_cluster(profile={profile!r}, cluster_id={cluster_id!r})
graph = ov.JobGraph({{"load": [], "clean": ["load"]}})"""

HANDLERS = """\
def load(job):
    return pipeline_mod.rows()

def clean(job):
    total = 0
    for row in job.inputs["load"]:
        total += pipeline_mod.parse(row)
    return total

handlers = {"load": load, "clean": clean}"""

RUN = """\
on_engines = ov.run(graph, handlers).wait(120)
in_threads = ov.run(graph, handlers, executor=ov.ThreadExecutor()).wait(60)

def report():
    out = {}
    for name, run in (("engines", on_engines), ("threads", in_threads)):
        d = job_details(run, "clean")
        out[name] = {"status": run.statuses["clean"], "traceback": run.jobs["clean"].error.traceback,
                     "journal": ov.load_run(run.run_id).jobs["clean"].error.traceback,
                     "panel": d["traceback"], "where": d["where"], "changed": d["changed"]}
    return out

print(json.dumps(report()))"""

REDEFINE = """\
def clean(job):
    return sum(int(row) for row in job.inputs["load"] if row.isdigit())

print(json.dumps(report()))"""

RETRY = """\
on_engines.retry()
on_engines.wait(120)
print(json.dumps({"status": on_engines.statuses["clean"], "result": on_engines.results["clean"],
                  "changed": job_details(on_engines, "clean")["changed"]}))"""


def last_json(cell) -> dict:
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def test_a_cell_handler_failing_on_engines_and_threads_reads_like_ipython(shared_cluster, tmp_path, monkeypatch):
    cluster, _client = shared_cluster
    (tmp_path / "pipeline_mod.py").write_text(MODULE)
    monkeypatch.setenv("OVERSEER_NB_JOURNAL", str(tmp_path / "journal.sqlite"))
    cells = [SETUP.format(folder=str(tmp_path), profile=cluster.profile, cluster_id=cluster.cluster_id),
             HANDLERS, RUN, REDEFINE, RETRY]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3", allow_errors=False,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    nbformat.write(nb, tmp_path / "executed.ipynb")  # kept for reading when the test fails
    first, later, retried = last_json(nb.cells[2]), last_json(nb.cells[3]), last_json(nb.cells[4])

    text = first["engines"]["traceback"]
    assert first["engines"]["status"] == first["threads"]["status"] == "failed"
    assert text == first["threads"]["traceback"], "an engine and a thread give the same text"
    assert text == first["engines"]["journal"] == first["threads"]["journal"], "the journal keeps that text"
    assert first["engines"]["panel"] == text
    lines = text.splitlines()
    assert "Cell In[2], line 7, in clean" in lines
    here = [line for line in lines if re.match(r"^-*> \d+ ", line)]
    assert here[0] == "----> 7         total += pipeline_mod.parse(row)"
    assert "      6     for row in job.inputs[\"load\"]:" in lines  # its neighbours, from the cell's source
    assert f'File "{tmp_path / "pipeline_mod.py"}", line 5, in parse' in lines
    assert here[1] == "----> 5     return int(row)  # 'x' is no number"
    assert lines[-1] == "ValueError: invalid literal for int() with base 10: 'x'"
    for internal in ("overseer_nb", "IPython", "ipykernel", "ipyparallel", "site-packages", "ipykernel_"):
        assert internal not in text, f"{internal!r} in the traceback:\n{text}"
    assert "\x1b[" not in text

    for name in ("engines", "threads"):
        assert first[name]["where"] == {"text": "handler: cell In[2], line 4", "cell": 2,
                                        "file": first[name]["where"]["file"], "line": 4}
        assert first[name]["changed"] == ""
        assert later[name]["changed"] == "the handler changed since this attempt: Retry uses the new code"
        assert later[name]["where"]["text"] == "handler: cell In[4], line 1"  # what a retry runs now
    assert retried == {"status": "finished", "result": 3, "changed": ""}
