"""Overseer's own example graph, run on a local ipyparallel cluster; prints each job's status.

    python examples/seed_graph.py
"""

import time

import overseer_nb as ov

job_graph = ov.JobGraph({
    "start": [],
    "result1": ["start"],
    "result2": ["start"],
    "finish": ["result1", "result2"],
})


def start(job):
    print("start")
    return job.args["org"]


def result1(job):
    print("result1")
    time.sleep(0.5)
    return job.inputs["start"] + 1


def result2(job):
    print("result2")
    time.sleep(0.5)
    return job.inputs["start"] * 2


def finish(job):
    print("finish")
    return job.inputs["result1"] + job.inputs["result2"]


job_handlers = {"start": start, "result1": result1, "result2": result2, "finish": finish}

if __name__ == "__main__":
    t0 = time.time()
    run = ov.run(job_graph, job_handlers, args={"org": 123})
    print(f"run {run.run_id} started; waiting...")
    run.wait()
    print(f"done in {time.time() - t0:.1f} s (including the local cluster's start)")
    for job, record in run.jobs.items():
        attempt = record.attempts[-1]
        print(f"  {job:8} {record.status:9} engine {attempt.engine}  stdout {attempt.stdout.strip()!r}")
    print("results:", run.results)
    ov.stop_cluster()
