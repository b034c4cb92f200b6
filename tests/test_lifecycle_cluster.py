"""The local cluster does not outlive its kernel: a kernel killed by SIGKILL takes it along.

A real second Python process (the "kernel") starts the local cluster through
overseer_nb, has one engine replaced (replacements are started from a thread),
prints the PIDs of everything it started, and is killed with SIGKILL as the OOM
killer would. Every one of those processes must be gone within a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
psutil = pytest.importorskip("psutil")

KERNEL = textwrap.dedent(
    """
    import json, os, signal, sys, time
    import psutil
    import overseer_nb as ov

    client = ov.use_cluster(engines=2)
    me = psutil.Process()

    def engines():
        return [p for p in me.children() if "ipyparallel.engine" in p.cmdline()]

    # one engine dies: the local cluster starts a replacement from a thread of its own
    first = engines()[0]
    first.kill()
    first.wait(10)
    deadline = time.monotonic() + 60
    while not (len(engines()) == 2 and first.pid not in [p.pid for p in engines()] and len(client.ids) == 2):
        assert time.monotonic() < deadline, "no replacement engine"
        time.sleep(0.1)
    controller = [p for p in me.children() if "ipyparallel.controller" in p.cmdline()]
    print(json.dumps({
        "controller": [p.pid for p in controller],
        "schedulers": [c.pid for p in controller for c in p.children(recursive=True)],
        "engines": [p.pid for p in engines()],
        "nannies": [c.pid for p in engines() for c in p.children(recursive=True)],
    }), flush=True)
    sys.stdin.read()  # until killed
    """
)


def alive(proc) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
@pytest.mark.cluster
def test_a_kernel_killed_by_sigkill_takes_its_local_cluster_along(tmp_path):
    script = tmp_path / "kernel.py"
    script.write_text(KERNEL)
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"), OVERSEER_NB_JOURNAL=":memory:",
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    kernel = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, start_new_session=True,
    )
    procs = []
    try:
        line = kernel.stdout.readline()
        assert line, kernel.stderr.read() if kernel.poll() is not None else "the kernel printed nothing"
        roles = json.loads(line)
        assert [len(roles[r]) for r in ("controller", "engines", "nannies")] == [1, 2, 2], roles
        assert roles["schedulers"], roles  # the controller's own processes
        procs = [psutil.Process(pid) for pids in roles.values() for pid in pids]
        assert all(alive(p) for p in procs)

        killed = time.monotonic()
        os.kill(kernel.pid, signal.SIGKILL)  # only the kernel, as the OOM killer does
        kernel.wait(10)
        left = procs
        while left and time.monotonic() - killed < 20:
            left = [p for p in left if alive(p)]
            time.sleep(0.05)
        took = time.monotonic() - killed
        print(f"the local cluster's {len(procs)} processes were gone {took:.2f} s after the kernel's SIGKILL")
        assert not left, f"still running 20 s after the kernel was killed: {[(p.pid, p.cmdline()[-1:]) for p in left]}"
        assert took < 6, f"the cluster took {took:.1f} s to go"
    finally:
        if kernel.poll() is None:
            os.killpg(kernel.pid, signal.SIGKILL)
            kernel.wait(10)
        for proc in procs:  # what a failure left behind
            if alive(proc):
                proc.kill()
        psutil.wait_procs(procs, timeout=10)
        kernel.stdin.close()
        kernel.stdout.close()
        kernel.stderr.close()
    assert not [p for p in procs if alive(p)]
