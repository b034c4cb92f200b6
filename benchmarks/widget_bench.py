"""What the live widget costs: layout time and SVG size of a 2,000-node graph, bytes sent per
state update, and the kernel CPU the widget uses during a 1,000-job run.

    python benchmarks/widget_bench.py [--nodes 2000] [--jobs 1000]

No kernel is needed: the widget's comm messages are counted where they leave it
(``Widget._send``); CPU is thread time spent in the widget's subscriber (on the
run's loop thread) and in its flushes (on its own thread).
"""

from __future__ import annotations

import argparse
import json
import random
import time

import overseer_nb as ov
from overseer_nb.display import render
from overseer_nb.display.widget import RunWidget


def layered_graph(n: int, width: int = 40, seed: int = 1) -> dict[str, list[str]]:
    """``n`` jobs in layers of ``width``; each job has 1-3 parents in the layer above."""
    rng = random.Random(seed)
    graph: dict[str, list[str]] = {}
    previous: list[str] = []
    for i in range(n):
        job = f"job{i:05d}"
        layer = i // width
        graph[job] = sorted(rng.sample(previous, min(len(previous), rng.randint(1, 3)))) if layer else []
        if (i + 1) % width == 0 or i == n - 1:
            previous = [f"job{j:05d}" for j in range(layer * width, i + 1)]
    return graph


def measure_layout(nodes: int) -> None:
    graph = ov.JobGraph(layered_graph(nodes))
    render.clear_layouts()
    t0 = time.perf_counter()
    svg = render.layout_svg(graph)
    layout = time.perf_counter() - t0
    t0 = time.perf_counter()
    render.layout_svg(graph)
    cached = time.perf_counter() - t0
    t0 = time.perf_counter()
    static = render.static_svg(graph, {job: "finished" for job in graph})
    colour = time.perf_counter() - t0
    print(f"graph of {nodes} nodes, {sum(len(graph.parents(job)) for job in graph)} edges")
    print(f"  dot layout (once per graph):   {layout:8.2f} s   (cached call {cached * 1e3:.3f} ms)")
    print(f"  SVG size (sent once):          {len(svg.encode()) / 1024:8.0f} KiB")
    print(f"  static coloured SVG (run end): {colour * 1e3:8.0f} ms, {len(static.encode()) / 1024:.0f} KiB")


class Meter:
    """Thread CPU time spent inside wrapped methods."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.calls = 0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu += time.thread_time() - t0
                self.calls += 1

        return timed


def measure_run(jobs: int, interval: float, job_seconds: float) -> None:
    graph = ov.JobGraph(layered_graph(jobs, width=25))

    def work(job):
        time.sleep(job_seconds)
        return job.type

    run = ov.Run(graph, {job: work for job in graph}, ov.ThreadExecutor(workers=4))
    t0 = time.perf_counter()
    widget = RunWidget(run, interval=interval)
    init = time.perf_counter() - t0
    initial = len(json.dumps(widget.get_state(), default=str).encode())

    sent: list[bytes] = []
    original = widget._send

    def spy(msg, buffers=None):
        sent.append(json.dumps(msg).encode())
        return original(msg, buffers)

    widget._send = spy
    on_step, flush = Meter(), Meter()
    widget._on_step = on_step.wrap(widget._on_step)
    widget.flush = flush.wrap(widget.flush)
    widget._unsubscribe()  # it subscribed unwrapped: subscribe the timed subscriber instead
    widget._unsubscribe = run.subscribe(widget._on_step)

    changes = 0

    def count(r, step):
        nonlocal changes
        changes += len(step.display)

    run.subscribe(count)
    cpu0, t0 = time.process_time(), time.perf_counter()
    run.start().wait(600)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    while widget._thread is not None:
        time.sleep(0.01)
    assert run.succeeded, run.summary()
    deltas = [b for b in sent if b'"custom"' in b]
    updates = [b for b in sent if b'"update"' in b]
    total = sum(map(len, sent))
    print(f"run of {jobs} jobs on {run.executor.workers} threads in this process, update interval {interval} s")
    print(f"  widget creation (layout + first state): {init:6.2f} s, first state {initial / 1024:.0f} KiB")
    print(f"  run wall time {wall:.2f} s, process CPU {cpu:.2f} s, display-state changes {changes}")
    print(f"  messages sent: {len(deltas)} state deltas + {len(updates)} header updates "
          f"(vs {changes} changes uncoalesced), {total / 1024:.1f} KiB in all")
    if deltas:
        print(f"  bytes per state update: mean {sum(map(len, deltas)) / len(deltas):.0f} B per delta message, "
              f"{sum(map(len, deltas)) / max(changes, 1):.1f} B per job state change; "
              f"header update mean {sum(map(len, updates)) / max(len(updates), 1):.0f} B")
    one = len(json.dumps({"method": "custom", "content": {"kind": "states", "states": {"job00042": "started"}}}))
    print(f"  one job's change alone: {one} B (the SVG is never re-sent)")
    print(f"  widget CPU: subscriber {on_step.cpu * 1e3:.1f} ms in {on_step.calls} calls "
          f"({on_step.cpu / max(on_step.calls, 1) * 1e6:.1f} us each, on the run's loop thread); "
          f"flushes {flush.cpu * 1e3:.1f} ms in {flush.calls} calls; "
          f"total {(on_step.cpu + flush.cpu) * 1e3:.1f} ms = {(on_step.cpu + flush.cpu) / wall * 100:.2f} % of the run's wall time")
    widget.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2000, help="nodes of the layout graph")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs of the measured run")
    parser.add_argument("--interval", type=float, default=0.1, help="widget update interval, s")
    parser.add_argument("--job-seconds", type=float, default=0.005, help="how long each job sleeps")
    args = parser.parse_args()
    measure_layout(args.nodes)
    measure_run(args.jobs, args.interval, args.job_seconds)


if __name__ == "__main__":
    main()
