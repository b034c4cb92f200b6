"""How soon the widget of a big graph has a picture, kernel side, against plain ``dot`` in the same run.

    python benchmarks/first_picture.py [--sizes 1000,5000,10000] [--repeat 1]

For each size, the layered graph of ``widget_bench.py`` (layers of 40 jobs, each
with 1-3 parents in the layer above) and, at the largest size, as many
independent jobs. Measured, each best of ``--repeat``:

- baseline: plain ``dot -Tsvg`` on the graph's DOT source with dot's default
  passes, in the calling thread: what creating the widget cost before;
- ``dot`` with the quicker passes a big graph now asks for (what the background
  thread runs, without ``nice``);
- first picture: ``RunWidget(run)`` until it returns, its ``svg`` trait holding
  a picture (the layered one for a big graph);
- full layout: from the same start until the ``svg`` trait holds ``dot``'s layout.

No kernel is needed; layouts are forgotten before each measurement. Prints one
JSON line per measurement, then a table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

from widget_bench import layered_graph

import overseer_nb as ov
from overseer_nb.display import render
from overseer_nb.display.dot import graph_dot
from overseer_nb.display.widget import RunWidget


def plain_dot(graph: ov.JobGraph) -> tuple[float, int]:
    """Seconds and SVG bytes of one ``dot -Tsvg`` run with dot's default passes."""
    source = graph_dot(graph, fast=False).encode()
    t0 = time.perf_counter()
    out = subprocess.run(["dot", "-Tsvg"], input=source, capture_output=True, check=True).stdout
    return time.perf_counter() - t0, len(out)


def fast_dot(graph: ov.JobGraph) -> float:
    t0 = time.perf_counter()
    render.run_dot(graph)
    return time.perf_counter() - t0


def widget_times(graph: ov.JobGraph, timeout: float = 600) -> dict[str, object]:
    """First picture and full layout of a new widget, in seconds; the pictures' sizes."""
    render.clear_layouts()
    run = ov.Run(graph, {job: (lambda job: None) for job in graph}, ov.ThreadExecutor())
    t0 = time.perf_counter()
    widget = RunWidget(run)
    first = time.perf_counter() - t0
    first_layout, first_size = widget.layout, len(widget.svg.encode())
    deadline = time.monotonic() + timeout
    while widget.layout_pending and time.monotonic() < deadline:
        time.sleep(0.005)
    full = time.perf_counter() - t0 if widget.layout == "dot" else None
    result = {"first_picture_s": first, "first_layout": first_layout, "first_kib": first_size / 1024,
              "full_layout_s": full, "final_layout": widget.layout, "final_kib": len(widget.svg.encode()) / 1024}
    widget.close()
    return result


def measure(name: str, graph: ov.JobGraph, repeat: int, baseline: bool) -> dict[str, object]:
    row: dict[str, object] = {"graph": name, "jobs": len(graph), "edges": sum(len(graph.parents(j)) for j in graph)}
    if baseline:
        runs = [plain_dot(graph) for _ in range(repeat)]
        row["plain_dot_s"], row["plain_dot_kib"] = min(t for t, _ in runs), runs[0][1] / 1024
    if render.dot_suits(graph):
        row["fast_dot_s"] = min(fast_dot(graph) for _ in range(repeat))
    best = min((widget_times(graph) for _ in range(repeat)), key=lambda r: r["first_picture_s"])
    row.update(best)
    print(json.dumps(row), flush=True)
    return row


def cell(value: object, unit: str = "s") -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.0f} ms"
    return f"{value / 1024:.1f} MiB" if value >= 1024 else f"{value:.0f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000", help="comma-separated job counts")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many")
    parser.add_argument("--no-baseline", action="store_true", help="skip plain dot (33 s at 10,000 jobs here)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    graphs = [(f"layered {n:,}", ov.JobGraph(layered_graph(n))) for n in sizes]
    graphs.append((f"independent {max(sizes):,}", ov.JobGraph({f"job{i:05d}": [] for i in range(max(sizes))})))
    rows = [measure(name, g, args.repeat, not args.no_baseline) for name, g in graphs]
    print()
    print("| graph | edges | plain dot (baseline) | first picture | its layout | full layout | "
          "dot, quicker passes | SVG first / full |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['graph']} | {r['edges']:,} | {cell(r.get('plain_dot_s'))} | {cell(r['first_picture_s'])} | "
              f"{r['first_layout']} | {cell(r['full_layout_s'])} | {cell(r.get('fast_dot_s'))} | "
              f"{cell(r['first_kib'], 'KiB')} / {cell(r['final_kib'], 'KiB')} |")


if __name__ == "__main__":
    main()
