"""Run a demo notebook with nbclient (no browser) and print the final statuses of its runs.

    python scripts/run_quickstart.py [notebooks/01-quickstart.ipynb]

What ``bash scripts/demo.sh --headless`` runs. Exit code 1 if a cell raised
or a run did not finish.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

# Runs in the same kernel after the notebook: every Run in its namespace, by variable name.
REPORT = """
import json as _json
import overseer_nb as _ov
print("OVERSEER_NB_RUNS " + _json.dumps({name: {"run_id": value.run_id, "statuses": value.statuses}
      for name, value in list(globals().items()) if isinstance(value, _ov.Run) and not name.startswith("_")}))
"""


def main(path: str) -> int:
    notebook = Path(path)
    nb = nbformat.read(notebook, as_version=4)
    report = nbformat.v4.new_code_cell(REPORT)
    nb.cells.append(report)  # run after the notebook, in its kernel; never saved
    client = NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(notebook.parent)}})
    print(f"running {notebook} (the first run starts a local cluster: a few seconds) ...", flush=True)
    t0 = time.monotonic()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                client.execute_cell(cell, index)
    errors = [(c.source.splitlines()[0], o.ename, o.evalue) for c in nb.cells[:-1] if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    for first_line, ename, evalue in errors:
        print(f"error in the cell '{first_line}': {ename}: {evalue}", file=sys.stderr)
    text = "".join(o.get("text", "") for o in report.outputs if o.output_type == "stream")
    runs = json.loads(text.split("OVERSEER_NB_RUNS ", 1)[1]) if "OVERSEER_NB_RUNS " in text else {}
    print(f"done in {time.monotonic() - t0:.1f} s; final statuses:")
    for name, info in runs.items():
        print(f"  {name} (run {info['run_id']}):")
        for job, status in info["statuses"].items():
            print(f"    {job:12} {status}")
    finished = runs and all(set(i["statuses"].values()) == {"finished"} for i in runs.values())
    if errors or not finished:
        print("the demo did not end as expected (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "notebooks/01-quickstart.ipynb"))
