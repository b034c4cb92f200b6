"""Execute a demo notebook top to bottom and store it with its outputs (pictures and tables).

    python scripts/execute_notebook.py notebooks/02-failures-and-retries.ipynb

The failures notebook is kept executed, so a reader on GitHub or nbviewer sees
each run's picture where the text talks about it (the snapshot of the failure
before its retry among them). The kernel runs with its own IPython directory and
journal in a temporary folder, as the notebook tests do. Live widget views are
dropped from the stored outputs (no page that only shows the file can draw them);
each keeps the static picture and the text it was displayed with.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbclient
import nbformat

WIDGET = "application/vnd.jupyter.widget-view+json"


def execute(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="overseer-nb-execute-") as tmp:
        env = {
            "IPYTHONDIR": os.path.join(tmp, "ipython"),
            "OVERSEER_NB_JOURNAL": os.path.join(tmp, "journal.sqlite"),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        }
        os.environ.update(env)  # the kernel inherits them
        client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                                         resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            data = out.get("data", {})
            if WIDGET in data:
                del data[WIDGET]
                if not set(data) - {"text/plain"}:
                    continue  # nothing but the widget's text: nothing to show without it
            kept.append(out)
        cell.outputs = kept
    nb.metadata.pop("widgets", None)
    return nb


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[0])
    nb = execute(path)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    print(f"stored {path} with its outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
