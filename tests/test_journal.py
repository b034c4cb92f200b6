"""The run journal in one process: what it records, where it lives, reading it back, resuming."""

from __future__ import annotations

import json
import os
import sqlite3
import stat

import pytest
from conftest import rows, spy_executor

import overseer_nb as ov
from overseer_nb.config import Overseer, set_defaults
from overseer_nb.errors import JournalError, RunError
from overseer_nb.journal import backup, journal_location, sql
from overseer_nb.journal.recorder import forget_live_runs
from overseer_nb.journal.sql import SCHEMA_VERSION
from overseer_nb.records import NOT_STORED

CHAIN = {"a": [], "b": ["a"], "c": ["b"]}


@pytest.fixture(autouse=True)
def default_settings():
    """Each test starts from the default Overseer settings."""
    yield
    set_defaults(None)



def test_transitions_and_attempts_are_recorded(tmp_path):
    path = str(tmp_path / "j.sqlite")

    def a(job):
        print("hello from a")
        return 1

    def b(job):
        raise ValueError("bad b")

    run = ov.run(CHAIN, {"a": a, "b": b, "c": a}, executor=ov.ThreadExecutor(1), journal=path).wait(10)
    assert run.statuses == {"a": "finished", "b": "failed", "c": "unstarted"}
    moves = rows(path, "SELECT job, old, new, reason, attempt FROM transitions WHERE run_id = ? ORDER BY id", (run.run_id,))
    assert moves == [
        ("a", "unstarted", "started", "engine took it", 1),
        ("a", "started", "finished", "returned", 1),
        ("b", "unstarted", "started", "engine took it", 1),
        ("b", "started", "failed", "exception", 1),
    ]
    jobs = dict(rows(path, "SELECT job, status FROM jobs WHERE run_id = ?", (run.run_id,)))
    assert jobs == run.statuses
    (attempt_a,) = rows(path, "SELECT outcome, stdout, engine, start <= end FROM attempts WHERE job = 'a'")
    assert attempt_a == ("finished", "hello from a\n", run.jobs["a"].engine, 1)
    (attempt_b,) = rows(path, "SELECT outcome, ename, evalue, traceback FROM attempts WHERE job = 'b'")
    assert attempt_b[:3] == ("failed", "ValueError", "bad b") and "raise ValueError" in attempt_b[3]
    (result,) = rows(path, "SELECT result, result_note FROM jobs WHERE job = 'a'")
    assert result == (run.jobs["a"].result_data, "stored")


def test_file_is_private_and_versioned(tmp_path):
    path = tmp_path / "j.sqlite"
    ov.run(CHAIN, {j: (lambda job: 1) for j in CHAIN}, executor=ov.ThreadExecutor(1), journal=path).wait(10)
    for name in ("j.sqlite", "j.sqlite-wal", "j.sqlite-shm"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
    assert rows(str(path), "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(str(path), "PRAGMA journal_mode") == [("wal",)]


def test_location_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OVERSEER_NB_JOURNAL", raising=False)
    default = str(tmp_path / "data" / "overseer_nb" / "journal.sqlite")
    assert journal_location() == default
    set_defaults(Overseer(journal=str(tmp_path / "config.sqlite")))
    assert journal_location() == str(tmp_path / "config.sqlite")
    monkeypatch.setenv("OVERSEER_NB_JOURNAL", str(tmp_path / "env.sqlite"))
    assert journal_location() == str(tmp_path / "env.sqlite")
    assert journal_location(tmp_path / "kw.sqlite") == str(tmp_path / "kw.sqlite")
    assert journal_location(":memory:") == ":memory:"
    assert journal_location(False) is None
    with pytest.raises(JournalError, match="journal= takes a file path"):
        journal_location(42)


def test_off_in_the_environment_or_the_option_turns_the_journal_off(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OVERSEER_NB_JOURNAL", "off")
    assert journal_location() is None
    assert journal_location(tmp_path / "kw.sqlite") == str(tmp_path / "kw.sqlite")  # the keyword wins
    run = ov.run({"a": []}, {"a": lambda job: 1}, executor=ov.ThreadExecutor()).wait(10)
    assert run.statuses == {"a": "finished"}
    assert not (tmp_path / "data").exists()  # nothing was written anywhere
    monkeypatch.delenv("OVERSEER_NB_JOURNAL")
    set_defaults(Overseer(journal="None"))
    assert journal_location() is None


def test_default_location_is_created_private(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OVERSEER_NB_JOURNAL", raising=False)
    run = ov.run(CHAIN, {j: (lambda job: 1) for j in CHAIN}, executor=ov.ThreadExecutor(1)).wait(10)
    path = tmp_path / "data" / "overseer_nb" / "journal.sqlite"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert [r.run_id for r in ov.runs()] == [run.run_id]


def test_memory_journal_runs_load_and_status_query():
    first = ov.run(CHAIN, {j: (lambda job: job.type) for j in CHAIN}, executor=ov.ThreadExecutor(1)).wait(10)
    second = ov.run({"x": []}, {"x": lambda job: 1 / 0}, executor=ov.ThreadExecutor(1), journal=":memory:").wait(10)
    listed = ov.runs(journal=":memory:")
    ids = [r.run_id for r in listed]
    assert ids.index(second.run_id) < ids.index(first.run_id)  # newest first
    info = listed[ids.index(first.run_id)]
    assert info.graph == CHAIN and info.counts["finished"] == 3 and info.counts["failed"] == 0
    assert first.run_id in repr(listed) and "finished" in repr(listed).splitlines()[0]
    assert ov.load_run(first.run_id) is first  # still alive in this process
    failed = ov.jobs_with_status("failed", run_id=second.run_id)
    assert [(r.run_id, r.job) for r in failed] == [(second.run_id, "x")]
    assert "ZeroDivisionError" in failed[0].message
    with pytest.raises(ValueError, match="'blocked' are derived"):
        ov.jobs_with_status("blocked")
    with pytest.raises(RunError, match="no run 'nope' in the journal"):
        ov.load_run("nope")


def test_off_records_nothing(tmp_path):
    run = ov.run(CHAIN, {j: (lambda job: 1) for j in CHAIN}, executor=ov.ThreadExecutor(1), journal=False).wait(10)
    assert run.run_id not in [r.run_id for r in ov.runs()]
    with pytest.raises(JournalError, match="journal=False"):
        ov.runs(journal=False)


def test_load_and_resume_in_a_new_process_view(tmp_path):
    """load_run of a finished run rebuilds states, attempts and results; resume runs the rest."""
    path = str(tmp_path / "j.sqlite")
    calls = []

    def ok(job):
        calls.append(job.type)
        return f"{job.type}:{sorted(job.inputs.items())}"

    def bad(job):
        raise RuntimeError("not yet")

    run = ov.run(CHAIN, {"a": ok, "b": bad, "c": ok}, executor=ov.ThreadExecutor(1), journal=path).wait(10)
    # what a new kernel sees: forget the live run
    forget_live_runs()
    loaded = ov.load_run(run.run_id[:-2], journal=path)  # a unique prefix works
    assert loaded is not run and loaded.run_id == run.run_id
    assert loaded.statuses == {"a": "finished", "b": "failed", "c": "unstarted"}
    assert loaded.display_states["c"] == "blocked"
    assert loaded.results == {"a": "a:[]"}
    assert loaded.jobs["b"].error.evalue == "not yet"
    assert "run.resume(handlers)" in loaded.message
    with pytest.raises(RunError, match="no handler for 'c'"):
        loaded.resume({"b": ok}, executor=ov.ThreadExecutor(1))
    calls.clear()
    loaded.resume({"b": ok, "c": ok}, executor=ov.ThreadExecutor(1)).wait(10)
    assert loaded.succeeded and calls == ["b", "c"]
    assert loaded.results["c"] == "c:[('b', \"b:[('a', 'a:[]')]\")]"
    resumed = rows(path, "SELECT job, old, new FROM transitions WHERE reason = 'resume'")
    assert resumed == [("b", "failed", "unstarted")]
    assert {r.job for r in ov.jobs_with_status("finished", run.run_id, journal=path)} == {"a", "b", "c"}


def test_result_over_the_cap_is_not_stored_and_rerun_only_when_needed(tmp_path):
    path = str(tmp_path / "j.sqlite")
    set_defaults(Overseer(journal_max_result_bytes=1000))
    graph = {"big": [], "small": [], "child": ["big"], "other": ["small"]}
    calls = []

    def make(fail):
        def handler(job):
            calls.append(job.type)
            if job.type in fail:
                raise RuntimeError("first time")
            return b"x" * 5000 if job.type == "big" else job.type
        return handler

    handlers = {j: make({"child"}) for j in graph}
    run = ov.run(graph, handlers, executor=ov.ThreadExecutor(1), journal=path).wait(10)
    assert run.statuses["child"] == "failed" and run.statuses["other"] == "finished"
    (note,) = rows(path, "SELECT result_note FROM jobs WHERE job = 'big'")
    assert "over the journal's cap of 1000" in note[0]
    forget_live_runs()
    loaded = ov.load_run(run.run_id, journal=path)
    assert loaded.results["big"] is NOT_STORED and loaded.results["small"] == "small"
    calls.clear()
    loaded.resume({j: make(set()) for j in graph}, executor=ov.ThreadExecutor(1)).wait(10)
    assert sorted(calls) == ["big", "child"]  # small's child did not need it again
    assert "big runs again: its result was not stored" in loaded.message
    assert loaded.results["child"] == "child" and loaded.succeeded


def test_output_is_capped_with_a_marker(tmp_path):
    path = str(tmp_path / "j.sqlite")
    set_defaults(Overseer(journal_max_output_chars=100))

    def noisy(job):
        print("A" * 60 + "B" * 5000 + "C" * 60)

    run = ov.run({"n": []}, {"n": noisy}, executor=ov.ThreadExecutor(1), journal=path).wait(10)
    ((stdout,),) = rows(path, "SELECT stdout FROM attempts WHERE run_id = ?", (run.run_id,))
    assert stdout.startswith("A" * 50) and stdout.endswith("C" * 49 + "\n")
    assert "characters not kept ...]" in stdout and len(stdout) < 200
    assert len(run.jobs["n"].attempts[0].stdout) > 5000  # the live run keeps it all


def test_read_only_location_submits_nothing(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    path = folder / "journal.sqlite"
    if os.access(folder, os.W_OK):  # root writes anywhere chmod forbids; /sys refuses even root
        path = "/sys/overseer_nb-journal.sqlite"
    spy = spy_executor()
    try:
        with pytest.raises(JournalError) as info:
            ov.run(CHAIN, {j: (lambda job: 1) for j in CHAIN}, executor=spy, journal=path)
    finally:
        folder.chmod(0o700)
    message = str(info.value)
    assert f"cannot open the journal {path}" in message and "journal=False" in message
    assert spy.submitted == []


def test_write_failure_mid_run_holds_the_run(tmp_path, monkeypatch):
    path = str(tmp_path / "j.sqlite")
    real = sql.write_step

    def failing(conn, run_id, owner, at, active, transitions, jobs, attempts, *items):
        if any(t[1] == "b" for t in transitions):
            raise sqlite3.OperationalError("disk I/O error")
        return real(conn, run_id, owner, at, active, transitions, jobs, attempts, *items)

    monkeypatch.setattr(sql, "write_step", failing)
    spy = spy_executor()
    run = ov.run(CHAIN, {j: (lambda job: 1) for j in CHAIN}, executor=spy, journal=path).wait(10)
    assert "c" not in spy.submitted
    assert "stopped submitting jobs" in run.message and "disk I/O error" in run.message
    recorded = dict(rows(path, "SELECT job, status FROM jobs WHERE run_id = ?", (run.run_id,)))
    assert recorded == {"a": "finished", "b": "unstarted", "c": "unstarted"}


def test_a_refused_write_shows_only_what_was_recorded_and_resume_goes_on(tmp_path, monkeypatch):
    path = str(tmp_path / "j.sqlite")
    real = sql.write_step
    refuse = {"on": True}

    def failing(conn, run_id, owner, at, active, transitions, jobs, attempts, *items):
        if refuse["on"] and any(t[1] == "b" and t[3] == "finished" for t in transitions):
            raise sqlite3.OperationalError("database or disk is full")
        return real(conn, run_id, owner, at, active, transitions, jobs, attempts, *items)

    monkeypatch.setattr(sql, "write_step", failing)
    ran = []
    handlers = {j: (lambda job: ran.append(job.type) or job.type) for j in CHAIN}
    shown: dict[str, str] = {}
    run = ov.run(CHAIN, handlers, executor=ov.ThreadExecutor(1), journal=path)
    run.subscribe(lambda r, step: shown.update(step.display))
    run.wait(10)
    recorded = dict(rows(path, "SELECT job, status FROM jobs WHERE run_id = ?", (run.run_id,)))
    # b's start and end may come in one step (one write) or two
    assert recorded["a"] == "finished" and recorded["b"] in ("unstarted", "started") and recorded["c"] == "unstarted"
    # what the run shows is what the journal has: b's finish was never recorded
    assert run.statuses == {"a": "finished", "b": "unstarted", "c": "unstarted"}
    assert shown.get("b") != "finished" and "c" not in ran
    assert "database or disk is full" in run.message and "run.resume()" in run.message
    assert run.jobs["b"].attempts[-1].error.ename == "JournalRefused"

    refuse["on"] = False  # the disk has room again
    run.resume().wait(10)
    assert run.succeeded and ran == ["a", "b", "b", "c"]
    recorded = dict(rows(path, "SELECT job, status FROM jobs WHERE run_id = ?", (run.run_id,)))
    assert recorded == {"a": "finished", "b": "finished", "c": "finished"}


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JournalError, match="newer than this overseer_nb knows"):
        ov.runs(journal=path)


def test_a_journal_of_the_previous_schema_opens_and_diffs_with_code_unknown(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    for statements in sql.MIGRATIONS[: sql.SCHEMA_VERSION - 1]:  # the journal as version 4 left it
        for statement in statements:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {sql.SCHEMA_VERSION - 1}")
    graph = json.dumps({"a": [], "b": ["a"]})
    for rid in ("20260101-000000-aaaaaa", "20260102-000000-bbbbbb"):
        conn.execute("INSERT INTO runs (run_id, graph, args, options, created, updated) VALUES (?, ?, NULL, '{}', 1, 2)",
                     (rid, graph))
        conn.execute("INSERT INTO jobs (run_id, job, status, attempt) VALUES (?, 'a', 'finished', 1)", (rid,))
        conn.execute("INSERT INTO jobs (run_id, job, status, attempt) VALUES (?, 'b', 'unstarted', 0)", (rid,))
    conn.close()
    assert [r.run_id for r in ov.runs(journal=path)] == ["20260102-000000-bbbbbb", "20260101-000000-aaaaaa"]
    assert rows(str(path), "PRAGMA user_version") == [(sql.SCHEMA_VERSION,)]
    assert rows(str(path), "SELECT count(*) FROM code") == [(0,)]
    d = ov.diff("20260101", "20260102", journal=path)
    assert d.unknown_code == {"a", "b"} and d.job("a").a.state == "finished"


def test_backup_uses_the_backup_api(tmp_path):
    path = str(tmp_path / "j.sqlite")
    run = ov.run(CHAIN, {j: (lambda job: 1) for j in CHAIN}, executor=ov.ThreadExecutor(1), journal=path).wait(10)
    target = backup(tmp_path / "copy.sqlite", journal=path)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert rows(target, "PRAGMA integrity_check") == [("ok",)]
    assert [r.run_id for r in ov.runs(journal=target)] == [run.run_id]
    with pytest.raises(JournalError, match="is the journal itself"):
        backup(path, journal=path)


def test_resume_refuses_a_run_another_live_process_is_running(tmp_path):
    path = str(tmp_path / "j.sqlite")
    run = ov.run(CHAIN, {"a": lambda job: 1, "b": lambda job: 1 / 0, "c": lambda job: 1},
                 executor=ov.ThreadExecutor(1), journal=path).wait(10)
    assert rows(path, "SELECT active FROM runs") == [(0,)]  # idle once it has nothing left to do
    forget_live_runs()
    conn = sqlite3.connect(path)
    with conn:  # as if a live process (our parent) were running it now
        conn.execute("UPDATE runs SET pid = ?, active = 1", (os.getppid(),))
    conn.close()
    loaded = ov.load_run(run.run_id, journal=path)
    assert f"process {os.getppid()} on this machine is still running it" in loaded.message
    with pytest.raises(RunError, match=f"is being run by process {os.getppid()}"):
        loaded.resume({j: (lambda job: 2) for j in CHAIN}, executor=ov.ThreadExecutor(1))
    conn = sqlite3.connect(path)
    with conn:  # the same process, idle: its run may be carried on here
        conn.execute("UPDATE runs SET active = 0")
    conn.close()
    loaded = ov.load_run(run.run_id, journal=path)
    loaded.resume({j: (lambda job: 2) for j in CHAIN}, executor=ov.ThreadExecutor(1)).wait(10)
    assert loaded.succeeded and rows(path, "SELECT pid FROM runs") == [(os.getpid(),)]
