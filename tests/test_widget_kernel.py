"""The widget in a real kernel (nbclient, no browser): a `Retry failed` click message retries the run."""

from __future__ import annotations

import json
import shutil

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

if shutil.which("dot") is None:
    pytest.skip("needs Graphviz dot", allow_module_level=True)

SETUP = '''
import os, time
import overseer_nb as ov
INPUT = os.path.abspath("input.csv")

def load(job):
    with open(job.args["input"]) as f:  # missing until a later cell writes it
        return f.read()

def count(job):
    return len(job.inputs["load"])

run = ov.run({"load": [], "count": ["load"]}, {"load": load, "count": count},
             args={"input": INPUT}, executor=ov.ThreadExecutor())
display(run)
run.wait(30)
while run.widget._thread is not None:  # the widget's last flush
    time.sleep(0.02)
print(json.dumps({"model_id": run.widget.model_id, "states": run.widget.states}))
'''

# Written to a file, not printed: output of a cell run right after a comm message
# can be attributed to that message's parent under load, and lost to the cell.
AFTER = '''
run.wait(30)
while run.widget._thread is not None:
    time.sleep(0.02)
with open("after.json", "w") as f:
    json.dump({"statuses": run.statuses, "states": run.widget.states}, f)
'''


def _last_json(cell) -> dict:
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    return json.loads(text.strip().splitlines()[-1])


def test_retry_failed_message_from_the_front_end(tmp_path):
    cells = ["import json\n" + SETUP, 'open(INPUT, "w").write("abc")', AFTER]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        first = _last_json(nb.cells[0])
        assert first["states"] == {"load": "failed", "count": "blocked"}
        kinds = {k for o in nb.cells[0].outputs for k in o.get("data", {})}
        assert {"application/vnd.jupyter.widget-view+json", "image/svg+xml"} <= kinds
        client.execute_cell(nb.cells[1], 1)
        # exactly what the widget's front end sends when `Retry failed` is clicked
        msg = client.kc.session.msg("comm_msg", {
            "comm_id": first["model_id"],
            "data": {"method": "custom", "content": {"kind": "action", "action": "retry_failed", "view": "t"}},
        })
        client.kc.shell_channel.send(msg)
        client.execute_cell(nb.cells[2], 2)
        after = json.loads((tmp_path / "after.json").read_text())
    assert after["statuses"] == {"load": "finished", "count": "finished"}
    assert after["states"] == {"load": "finished", "count": "finished"}


LATE = '''
import threading, time
import overseer_nb as ov
gate = threading.Event()
run = ov.run({"slow": [], "after": ["slow"]}, {"slow": lambda job: gate.wait(30), "after": lambda job: 1},
             executor=ov.ThreadExecutor())
display(run)  # the cell ends while the run goes on
'''


def test_saved_picture_shows_the_final_state_after_a_later_wait(tmp_path):
    """A run that ends after its cell: the cell that waits for it updates the saved picture."""
    cells = [LATE, "gate.set()\nrun.wait(30);"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    pictures = [o["data"]["image/svg+xml"] for o in nb.cells[0].outputs if "image/svg+xml" in o.get("data", {})]
    assert len(pictures) == 1
    assert 'data-job="slow" data-state="finished"' in pictures[0]
    assert 'data-job="after" data-state="finished"' in pictures[0]
