"""Output of subprocesses and C code, progress lines, the engine's cap, the client's echo: on the shared cluster."""

from __future__ import annotations

import os
import sys
import threading
import time

import cloudpickle
import pytest

import overseer_nb as ov
from overseer_nb.execution import ThreadExecutor
from overseer_nb.execution.engine import run_attempt

pytestmark = pytest.mark.cluster

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_subprocess_and_c_output_are_captured_in_order_with_python_output(client):
    def mixed(job):
        import ctypes
        import subprocess

        print("python 1", flush=True)
        os.system("echo from a shell")
        subprocess.run(["sh", "-c", "echo from a subprocess; echo its stderr >&2"], check=True)
        os.write(1, b"raw fd 1\n")
        print("python 2")
        ctypes.CDLL(None).printf(b"from C printf\n")  # C's own buffer: flushed when the attempt ends
        print("progress  10%\rprogress  50%\rprogress 100%")
        return "ok"

    run = ov.run({"mixed": []}, {"mixed": mixed}, cluster=client, journal=False).wait(60)
    attempt = run.jobs["mixed"].attempts[0]
    assert run.results == {"mixed": "ok"}
    assert "from C printf\n" in attempt.stdout
    assert attempt.stdout.replace("from C printf\n", "") == (
        "python 1\nfrom a shell\nfrom a subprocess\nraw fd 1\npython 2\nprogress 100%\n"
    ), attempt.stdout
    assert "its stderr\n" in attempt.stderr
    assert "10%" not in attempt.stdout  # a redrawn line keeps its last state


def test_the_engine_keeps_max_output_chars_of_fd_level_output(client):
    def chatty(job):
        os.system("yes 0123456789 | head -n 20000")  # 220,000 characters from a subprocess
        return None

    report = client[client.ids[0]].apply_sync(
        run_attempt, job="chatty", job_id="r:chatty", attempt=1, run_id="r", stages=cloudpickle.dumps((None, chatty, None)),
        args={}, inputs={}, max_result_bytes=1000, capture_limit=2_000, on_engine=True,
    )
    out = report["stdout"]
    assert report["kind"] == "ok" and "characters not kept" in out
    assert len(out) < 2_100 and out.startswith("0123456789\n") and out.endswith("\n")
    assert ov.run({"a": []}, {"a": lambda job: 1}, cluster=client, journal=False, max_output_chars=5_000).wait(30)\
        .options.max_output_chars == 5_000


def test_the_configured_max_output_chars_caps_what_a_run_keeps(client):
    from overseer_nb.config import Overseer, set_defaults

    def chatty(job):
        os.system("yes 0123456789 | head -n 2000")  # 22,000 characters
        print("python's own line")

    set_defaults(Overseer(max_output_chars=3_000))
    try:
        run = ov.run({"chatty": []}, {"chatty": chatty}, cluster=client, journal=False).wait(30)
    finally:
        set_defaults(None)
    out = run.jobs["chatty"].attempts[0].stdout
    assert "characters not kept" in out and len(out) < 3_100
    assert out.endswith("0123456789\npython's own line\n")


def test_the_clients_echo_of_a_running_jobs_output_does_not_grow(client, tmp_path):
    done = tmp_path / "printed"

    def prints_a_lot(job):
        for _ in range(50):
            print("x" * 4_000, flush=True)
        done.write_text("")
        time.sleep(1.0)
        return "quiet now"

    run = ov.run({"loud": []}, {"loud": prints_a_lot}, cluster=client, journal=False)
    deadline = time.monotonic() + 30
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # let IOPub deliver
    echoed = max((len(md.get("stdout") or "") for md in list(client.metadata.values()) if isinstance(md, dict)), default=0)
    run.wait(30)
    assert echoed < 10_000, echoed  # 200,000 characters went by; the kernel's metadata keeps none of it
    assert len(run.jobs["loud"].attempts[0].stdout) == 50 * 4_001


def test_jobs_on_kernel_threads_capture_per_thread_and_leave_fd_1_alone(tmp_path):
    seen = {}

    def job(job):
        seen["fd1"] = os.fstat(1).st_ino, os.fstat(2).st_ino
        print(f"from {job.type}")
        time.sleep(0.2)
        return None

    before = os.fstat(1).st_ino, os.fstat(2).st_ino
    run = ov.run({"a": []}, {"a": job}, executor=ThreadExecutor(1), journal=False)
    time.sleep(0.1)
    print("from the notebook")  # another thread: not the job's
    run.wait(10)
    assert seen["fd1"] == before == (os.fstat(1).st_ino, os.fstat(2).st_ino)
    assert run.jobs["a"].attempts[0].stdout == "from a\n"
    assert threading.active_count() >= 1
