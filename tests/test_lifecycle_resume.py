"""Who carries a run on: one owner at a time, claimed in one transaction, taken over only from the gone.

The race is between two real processes resuming the same run of one journal
file: a barrier through a file holds both just after ``Run.resume``'s early
look at the owner (``Recorder.check_owner``), where a cluster start would sit,
so both have seen the run free before either claims it. Exactly one may win.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import rows

import overseer_nb as ov
from overseer_nb.errors import RunOwnerError
from overseer_nb.journal import recorder, sql
from overseer_nb.journal.recorder import forget_live_runs

ROOT = Path(__file__).resolve().parent.parent
CHAIN = {"a": [], "b": ["a"], "c": ["b"]}

RESUMER = textwrap.dedent(
    """
    import json, os, sys, time
    import overseer_nb as ov
    from overseer_nb.errors import RunError
    from overseer_nb.journal.recorder import Recorder

    journal, run_id, barrier, log = sys.argv[1:5]
    run = ov.load_run(run_id, journal=journal)
    released = []
    look = Recorder.check_owner

    def look_then_wait(self, run):
        look(self, run)  # nobody runs it: both processes get past this look
        open(os.path.join(barrier, str(os.getpid())), "w").close()
        while len(os.listdir(barrier)) < 2:
            time.sleep(0.001)
        released.append(time.monotonic())

    Recorder.check_owner = look_then_wait

    def work(job):
        with open(log, "a") as f:
            f.write(f"{job.type} {os.getpid()}\\n")
        time.sleep(0.5)  # the winner is still at it when the other claims
        return job.type

    try:
        run.resume({job: work for job in run.graph}, executor=ov.ThreadExecutor(1))
    except RunError as exc:
        refused = time.monotonic() - released[0]
        print(json.dumps({"pid": os.getpid(), "won": False, "message": str(exc), "refused_after": refused}))
    else:
        run.wait(30)
        print(json.dumps({"pid": os.getpid(), "won": True, "succeeded": run.succeeded}))
    """
)




def set_owner(path, **values):
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in values)}", tuple(values.values()))
    conn.close()


def failed_run(path):
    """A run of CHAIN in ``path`` whose b failed (so b and c are left to resume), idle."""
    def b(job):
        raise RuntimeError("not yet")

    run = ov.run(CHAIN, {"a": lambda job: "a", "b": b, "c": lambda job: "c"},
                 executor=ov.ThreadExecutor(1), journal=path).wait(10)
    assert run.statuses == {"a": "finished", "b": "failed", "c": "unstarted"}
    return run


def ok_handlers():
    return {job: (lambda job: job.type) for job in CHAIN}


def test_two_processes_resuming_one_run_at_once_exactly_one_wins(tmp_path):
    path, log, barrier = str(tmp_path / "j.sqlite"), tmp_path / "ran.txt", tmp_path / "barrier"
    barrier.mkdir()
    run_id = failed_run(path).run_id
    script = tmp_path / "resumer.py"
    script.write_text(RESUMER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    env.pop("OVERSEER_NB_JOURNAL", None)
    procs = [subprocess.Popen([sys.executable, str(script), path, run_id, str(barrier), str(log)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    try:
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    winners = [r for r in results if r["won"]]
    losers = [r for r in results if not r["won"]]
    assert len(winners) == 1 and len(losers) == 1, results
    (winner,), (loser,) = winners, losers
    assert winner["succeeded"]
    host = socket.gethostname()
    assert loser["message"] == (
        f"run {run_id} is being run by process {winner['pid']} on this machine ({host}); "
        "resume it there, or stop that process first"
    )
    print(f"the second claimant was refused {loser['refused_after'] * 1000:.1f} ms after both were let go")
    assert loser["refused_after"] < 2.0
    # the journal: the winner owns it, and b and c ran once, there
    assert rows(path, "SELECT host, pid, active FROM runs") == [(host, winner["pid"], 0)]
    assert log.read_text().split("\n")[:-1] == [f"b {winner['pid']}", f"c {winner['pid']}"]
    finished = rows(path, "SELECT job, count(*) FROM transitions WHERE new = 'finished' GROUP BY job")
    assert finished == [("a", 1), ("b", 1), ("c", 1)]


def test_a_copy_loaded_before_another_carried_the_run_on_is_refused(tmp_path):
    path = str(tmp_path / "j.sqlite")
    run_id = failed_run(path).run_id
    forget_live_runs()
    old = ov.load_run(run_id, journal=path)
    forget_live_runs()
    ov.load_run(run_id, journal=path).resume(ok_handlers(), executor=ov.ThreadExecutor(1)).wait(10)
    forget_live_runs()
    with pytest.raises(RunOwnerError, match=r"was carried on by process \d+ on this machine .* since this copy of it "
                       r"was loaded \(jobs b, c\); load it again"):
        old.resume(ok_handlers(), executor=ov.ThreadExecutor(1))
    assert rows(path, "SELECT count(*) FROM transitions WHERE new = 'finished'") == [(3,)]  # nothing ran twice


def test_a_run_on_another_machine_is_taken_over_only_once_its_heartbeat_is_old(tmp_path):
    path = str(tmp_path / "j.sqlite")
    run_id = failed_run(path).run_id
    forget_live_runs()
    set_owner(path, host="node7.cluster", pid=4242, active=1, heartbeat=time.time() - 10)
    loaded = ov.load_run(run_id, journal=path)
    assert "process 4242 on node7.cluster is still running it" in loaded.message
    with pytest.raises(RunOwnerError, match=r"is being run by process 4242 on node7.cluster; .*last heartbeat was "
                       r"10 s ago") as info:
        loaded.resume(ok_handlers(), executor=ov.ThreadExecutor(1))
    assert (info.value.host, info.value.pid) == ("node7.cluster", 4242)
    set_owner(path, heartbeat=time.time() - recorder.STALE_AFTER - 1)
    loaded = ov.load_run(run_id, journal=path)
    assert "run.resume(handlers)" in loaded.message
    loaded.resume(ok_handlers(), executor=ov.ThreadExecutor(1)).wait(10)
    assert loaded.succeeded
    assert rows(path, "SELECT host, pid FROM runs") == [(socket.gethostname(), os.getpid())]


def test_a_run_taken_over_records_and_submits_nothing_more(tmp_path):
    """The old owner was thought gone and another process took the run: its writes stop."""
    path = str(tmp_path / "j.sqlite")
    go = threading.Event()

    def slow(job):
        go.wait(10)
        return job.type

    run = ov.run(CHAIN, {"a": slow, "b": slow, "c": slow}, executor=ov.ThreadExecutor(1), journal=path)
    deadline = time.monotonic() + 10
    while run.statuses["a"] != "started":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    set_owner(path, pid=os.getppid())  # as if our parent had taken the run over
    go.set()
    run.wait(10)
    assert f"was taken over by process {os.getppid()} on this machine" in run.message
    assert run.statuses["b"] == "unstarted"  # a's end was refused, so b was not sent
    assert rows(path, "SELECT job, status FROM jobs ORDER BY job") == [
        ("a", "started"), ("b", "unstarted"), ("c", "unstarted")
    ]


def test_the_heartbeat_goes_on_while_a_long_job_runs(tmp_path, monkeypatch):
    path = str(tmp_path / "j.sqlite")
    monkeypatch.setattr(recorder, "HEARTBEAT_EVERY", 0.1)
    go = threading.Event()
    run = ov.run({"long": []}, {"long": lambda job: go.wait(10)}, executor=ov.ThreadExecutor(1), journal=path)
    try:
        ((first,),) = rows(path, "SELECT heartbeat FROM runs")
        time.sleep(0.5)  # no step meanwhile: the job runs
        ((later,),) = rows(path, "SELECT heartbeat FROM runs")
        assert later > first + 0.2
    finally:
        go.set()
        run.wait(10)


def test_a_journal_of_version_1_gets_the_heartbeat_column(tmp_path):
    path = str(tmp_path / "old.sqlite")
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in sql.MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO runs (run_id, graph, created, updated, host, pid, active)"
                 " VALUES ('r1', '{\"a\": []}', 1.0, 2.0, 'h', 1, 0)")
    conn.close()
    assert [r.run_id for r in ov.runs(journal=path)] == ["r1"]
    assert rows(path, "PRAGMA user_version") == [(sql.SCHEMA_VERSION,)]
    assert rows(path, "SELECT heartbeat FROM runs") == [(2.0,)]
