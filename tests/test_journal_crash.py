"""The journal across processes: a kernel killed mid-run and resumed, a crash loop, a reader beside a writer."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

import overseer_nb as ov
from overseer_nb.errors import RunError

# The handlers of the 'kernel' and of the process that resumes its run: the
# same source, so both ship the same functions to the engines.
CHAIN_HANDLERS = textwrap.dedent(
    """
    import os
    import time

    def step(job):
        if job.type == "c" and not os.path.exists(job.args["flag"]):
            time.sleep(60)  # long enough to be killed in the middle
        with open(job.args["log"], "a") as f:
            f.write(job.type + "\\n")
        return job.type

    GRAPH = {"a": [], "b": ["a"], "c": ["b"], "d": ["c"], "e": ["d"]}
    HANDLERS = {name: step for name in GRAPH}
    """
)

KERNEL = CHAIN_HANDLERS + textwrap.dedent(
    """
    import json, sys
    import psutil
    import overseer_nb as ov

    journal, log, flag, pids = sys.argv[1:5]
    ov.use_cluster(engines=2)
    with open(pids, "w") as f:  # controller, engines: they follow a killed kernel (test_lifecycle_cluster)
        json.dump([p.pid for p in psutil.Process().children(recursive=True)], f)
    run = ov.run(GRAPH, HANDLERS, args={"log": log, "flag": flag}, journal=journal)
    print(run.run_id, flush=True)
    run.wait()
    """
)



def kill_pids(pids):
    import psutil

    procs = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            procs.extend(proc.children(recursive=True))
            procs.append(proc)
        except psutil.NoSuchProcess:
            pass
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)

    def running(proc):
        try:
            return proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    left = [p for p in alive if running(p)]
    assert not left, f"still running after the kill: {left}"


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


def statuses(path, run_id):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT job, status FROM jobs WHERE run_id = ?", (run_id,)).fetchall())
    finally:
        conn.close()


@pytest.mark.cluster
def test_resume_after_the_kernel_is_killed(tmp_path, client):
    journal, log, flag, pids = (str(tmp_path / n) for n in ("j.sqlite", "log.txt", "flag", "pids.json"))
    script = tmp_path / "kernel.py"
    script.write_text(KERNEL)
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"))
    env.pop("OVERSEER_NB_JOURNAL", None)
    kernel = subprocess.Popen(
        [sys.executable, str(script), journal, log, flag, pids],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )
    try:
        run_id = kernel.stdout.readline().strip()
        assert run_id, kernel.stderr.read()
        wait_for(lambda: statuses(journal, run_id).get("c") == "started", 60, "job c starting")
        os.killpg(kernel.pid, signal.SIGKILL)
        kernel.wait(10)
    finally:
        if kernel.poll() is None:
            os.killpg(kernel.pid, signal.SIGKILL)
            kernel.wait(10)
        if os.path.exists(pids):
            with open(pids) as f:
                kill_pids(json.load(f))
        kernel.stdout.close()
        kernel.stderr.close()
    with open(flag, "w"):
        pass
    with open(log) as f:
        assert f.read().split() == ["a", "b"]

    # a new process: list, load, resume with the same handlers
    (info,) = [r for r in ov.runs(journal=journal) if r.run_id == run_id]
    assert (info.counts["finished"], info.counts["started"], info.counts["unstarted"]) == (2, 1, 2)
    run = ov.load_run(run_id, journal=journal)
    assert run.statuses == {"a": "finished", "b": "finished", "c": "unstarted", "d": "unstarted", "e": "unstarted"}
    assert run.jobs["c"].attempts[-1].outcome == "lost"
    namespace = {"__name__": "kernel_handlers"}
    exec(CHAIN_HANDLERS, namespace)
    run.resume(namespace["HANDLERS"], cluster=client).wait(60)
    assert run.succeeded, run.summary()
    with open(log) as f:
        assert f.read().split() == ["a", "b", "c", "d", "e"]
    assert run.results == {j: j for j in "abcde"}
    assert statuses(journal, run_id) == dict.fromkeys("abcde", "finished")
    conn = sqlite3.connect(journal)
    moves = conn.execute("SELECT old, new, reason FROM transitions WHERE job = 'c' ORDER BY id").fetchall()
    conn.close()
    assert moves[:2] == [("unstarted", "started", "engine took it"), ("started", "unstarted", "resume")]


WRITER = textwrap.dedent(
    """
    import sys, time
    import overseer_nb as ov

    def work(job):
        time.sleep(0.002)
        return job.type

    GRAPH = {f"j{l}_{i}": [f"j{l - 1}_{k}" for k in range(3) if l] for l in range(8) for i in range(3)}
    HANDLERS = {job: work for job in GRAPH}
    journal, final = sys.argv[1], sys.argv[2] == "final"

    def unfinished():
        return [r for r in ov.runs(journal=journal) if r.counts["finished"] < len(r.graph)]

    while True:
        for info in unfinished():
            run = ov.load_run(info.run_id, journal=journal)
            run.resume(HANDLERS, executor=ov.ThreadExecutor(2)).wait(30)
        if final:
            break
        ov.run(GRAPH, HANDLERS, executor=ov.ThreadExecutor(2), journal=journal).wait(30)
    """
)


@pytest.mark.slow
def test_crash_loop_keeps_the_journal_consistent(tmp_path):
    journal = str(tmp_path / "j.sqlite")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = dict(os.environ)
    env.pop("OVERSEER_NB_JOURNAL", None)
    rng = random.Random(5)
    kills = 0
    for _ in range(22):
        proc = subprocess.Popen([sys.executable, str(script), journal, "loop"], env=env, start_new_session=True,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 0.9))  # imports take ~0.3 s: kills land from opening to mid-run
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(10)
    assert kills >= 20
    done = subprocess.run([sys.executable, str(script), journal, "final"], env=env, timeout=60, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    conn = sqlite3.connect(journal)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    assert runs >= 10
    disagree = conn.execute(
        """SELECT j.run_id, j.job, j.status, t.new FROM jobs j
           LEFT JOIN transitions t ON t.id = (SELECT max(id) FROM transitions
                                              WHERE run_id = j.run_id AND job = j.job)
           WHERE j.status != coalesce(t.new, 'unstarted')"""
    ).fetchall()
    assert disagree == []
    twice = conn.execute(
        "SELECT run_id, job, count(*) FROM transitions WHERE new = 'finished' GROUP BY run_id, job HAVING count(*) > 1"
    ).fetchall()
    assert twice == []
    assert conn.execute("SELECT count(*) FROM jobs WHERE status != 'finished'").fetchone()[0] == 0
    resumed = conn.execute("SELECT count(*) FROM transitions WHERE reason = 'resume'").fetchone()[0]
    conn.close()
    assert resumed > 0  # some kills did land mid-job


READER_SIDE_WRITER = textwrap.dedent(
    """
    import sys, time
    import overseer_nb as ov

    def work(job):
        time.sleep(0.04)
        return job.type

    GRAPH = {f"j{i}": [f"j{i - 1}"] if i % 4 else [] for i in range(40)}
    run = ov.run(GRAPH, {j: work for j in GRAPH}, executor=ov.ThreadExecutor(2), journal=sys.argv[1])
    print(run.run_id, flush=True)
    run.wait(60)
    """
)


def test_a_reader_beside_a_running_writer(tmp_path):
    journal = str(tmp_path / "j.sqlite")
    script = tmp_path / "writer.py"
    script.write_text(READER_SIDE_WRITER)
    env = dict(os.environ)
    env.pop("OVERSEER_NB_JOURNAL", None)
    proc = subprocess.Popen([sys.executable, str(script), journal], stdout=subprocess.PIPE, text=True, env=env)
    try:
        run_id = proc.stdout.readline().strip()
        seen = set()
        refused = False
        while proc.poll() is None:
            (info,) = [r for r in ov.runs(journal=journal) if r.run_id == run_id]
            seen.add(info.counts["finished"])
            run = ov.load_run(run_id, journal=journal)
            assert sum(s == "finished" for s in run.statuses.values()) >= info.counts["finished"]
            assert ov.jobs_with_status("finished", run_id, journal=journal) is not None
            if not refused and 0 < info.counts["finished"] < 40:
                with pytest.raises(RunError, match="is being run by process"):
                    run.resume({}, executor=ov.ThreadExecutor(1))
                refused = True
            time.sleep(0.02)
    finally:
        proc.wait(60)
        proc.stdout.close()
    assert proc.returncode == 0
    assert refused and len(seen - {0, 40}) >= 2  # it saw the run in progress
    assert ov.load_run(run_id, journal=journal).succeeded
