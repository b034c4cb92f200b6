"""The data plane on a real cluster: big results stay out of the kernel (SPEC §11).

A parent's result bigger than the inline limit stays on its engine and in the
result store; children read it there; the kernel holds where it is. Each test
checks what a user relies on: the value children get, the kernel's memory,
the journal after a crash, engine loss, the fallback when engines do not
share the store, and pruning.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import psutil
import pytest
from conftest import wait_until
from test_journal_crash import kill_pids, statuses, wait_for

import overseer_nb as ov
from overseer_nb.display import status_table
from overseer_nb.records import UnloadableResult

GRAPH = {"make": [], "left": ["make"], "right": ["make"]}
MIB = 2**20


def big_handlers(nbytes: int) -> dict:
    """A parent making an array of ``nbytes`` and two children summing all of it (with their pids)."""

    def make(job):
        import numpy

        return numpy.full(nbytes // 8, 2.0)

    def total(job):
        import os

        return float(job.inputs["make"].sum()), os.getpid()

    return {"make": make, "left": total, "right": total}


class PeakRSS:
    """The largest growth of this process's RSS while the block runs (sampled every 5 ms)."""

    def __enter__(self):
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.growth = self.peak - self.base


def engine_pids(client) -> dict[int, int]:
    return dict(zip(client.ids, client[:].apply_sync(os.getpid), strict=True))


def held_on_engines(client) -> list[tuple[int, int]]:
    """(results, bytes) each engine keeps in memory."""
    from overseer_nb.execution.holding import held

    return client[:].apply_sync(held)


@pytest.mark.cluster
def test_a_big_result_reaches_both_children_without_passing_through_the_kernel(client, tmp_path):
    store = tmp_path / "store"
    nbytes = 300 * MIB
    with PeakRSS() as mem:
        # sent by the kernel once "make" finished (eager=False), so placed near the input it then knows is big
        run = ov.run(GRAPH, big_handlers(nbytes), cluster=client, journal=False, store=str(store),
                     eager=False).wait(120)
    assert run.succeeded, run.summary()
    expected = 2.0 * (nbytes // 8)
    (left, left_pid), (right, right_pid) = run.results["left"], run.results["right"]
    assert left == right == expected
    assert mem.growth < 50 * MIB, f"the kernel grew by {mem.growth / MIB:.0f} MiB"

    stored = run.jobs["make"].stored
    assert stored is not None and stored.nbytes > nbytes  # the kernel holds where it is, not the bytes
    assert stored.summary == f"numpy.ndarray shape=({nbytes // 8},) dtype=float64"
    assert os.path.dirname(stored.path) == str(store / run.run_id)
    wait_until(stored.exists, timeout=30)  # written in the background; the run did not wait for it
    assert stat.S_IMODE(os.stat(stored.path).st_mode) == 0o600
    # placed near its input: a big one is worth waiting for, so both ran where it is (from memory)
    pids = engine_pids(client)
    assert left_pid == right_pid == pids[run.jobs["make"].engine]
    # small results still travel inline
    assert isinstance(run.jobs["left"].result_data, bytes)
    # %overseer_status shows the summary, without reading the file
    assert f"numpy.ndarray shape=({nbytes // 8},) dtype=float64, 300.0 MiB in store" in repr(status_table(run))

    # the value is fetched only when asked: a memory map of the file, not a copy
    with PeakRSS() as read:
        value = run.results["make"]
    assert isinstance(value, np.ndarray) and value.shape == (nbytes // 8,) and float(value[-1]) == 2.0
    assert read.growth < 20 * MIB
    # the run is over: no engine keeps its results in memory
    wait_until(lambda: held_on_engines(client) == [(0, 0), (0, 0)], timeout=10)


@pytest.mark.cluster
def test_a_child_on_another_engine_reads_the_result_from_the_store(client, tmp_path):
    from overseer_nb.config import Overseer, set_defaults

    nbytes = 100 * MIB
    set_defaults(Overseer(follow_input_bytes=2**40))  # never wait for the engine that holds it
    try:
        with PeakRSS() as mem:  # sent once "make" finished (a child sent ahead would move to its engine)
            run = ov.run(GRAPH, big_handlers(nbytes), cluster=client, journal=False, store=str(tmp_path),
                         eager=False).wait(120)
    finally:
        set_defaults(None)
    assert run.succeeded, run.summary()
    (left, left_pid), (right, right_pid) = run.results["left"], run.results["right"]
    assert left == right == 2.0 * (nbytes // 8)
    assert left_pid != right_pid  # one read it from its engine's memory, the other from the file
    assert mem.growth < 50 * MIB


@pytest.mark.cluster
def test_many_runs_do_not_grow_the_engines_memory(client, tmp_path):
    handlers = big_handlers(60 * MIB)
    pids = engine_pids(client)
    rss = []
    for i in range(6):
        run = ov.run(GRAPH, handlers, cluster=client, journal=False, store=str(tmp_path / "store")).wait(120)
        assert run.succeeded, run.summary()
        wait_until(lambda: held_on_engines(client) == [(0, 0), (0, 0)], timeout=10)
        if i in (1, 5):
            rss.append(sum(psutil.Process(pid).memory_info().rss for pid in pids.values()))
    assert rss[1] - rss[0] < 80 * MIB, f"engines grew by {(rss[1] - rss[0]) / MIB:.0f} MiB over 4 runs"


@pytest.mark.cluster
def test_small_results_travel_inline_and_the_store_is_left_empty(client, tmp_path):
    def small(job):
        return {"n": 3}

    def use(job):
        return job.inputs["small"]["n"] * 2

    run = ov.run({"small": [], "use": ["small"]}, {"small": small, "use": use}, cluster=client, journal=False,
                 store=str(tmp_path / "store"), eager=False).wait(60)
    assert run.results == {"small": {"n": 3}, "use": 6}
    assert isinstance(run.jobs["small"].result_data, bytes)
    assert not os.path.exists(tmp_path / "store" / run.run_id)
    # sent ahead of "small" (eager dispatch, the default), its one child "use" runs on its engine and reads
    # its result from that engine's memory: it still travels inline, and the store stays empty
    run = ov.run({"small": [], "use": ["small"]}, {"small": small, "use": use}, cluster=client, journal=False,
                 store=str(tmp_path / "store")).wait(60)
    assert run.results == {"small": {"n": 3}, "use": 6}
    assert isinstance(run.jobs["small"].result_data, bytes)
    assert run.jobs["use"].engine == run.jobs["small"].engine
    assert not os.path.exists(tmp_path / "store" / run.run_id)
    # two children sent ahead may run on both engines: the parent's small result goes to the store for them
    graph = {"small": [], "use": ["small"], "also": ["small"]}
    run = ov.run(graph, {"small": small, "use": use, "also": use}, cluster=client, journal=False,
                 store=str(tmp_path / "store")).wait(60)
    assert run.results == {"small": {"n": 3}, "use": 6, "also": 6}
    assert run.jobs["small"].stored is not None and run.jobs["small"].stored.exists()
    assert isinstance(run.jobs["use"].result_data, bytes)  # a leaf's result still travels inline
    assert os.listdir(tmp_path / "store" / run.run_id) == ["small.1.ovnb"]


@pytest.mark.cluster
def test_max_result_bytes_is_off_by_default_and_caps_when_set(client, tmp_path):
    handlers = big_handlers(8 * MIB)
    run = ov.run(GRAPH, handlers, cluster=client, journal=False, store=str(tmp_path / "s"),
                 max_result_bytes=MIB).wait(60)
    assert run.statuses["make"] == "failed"
    assert run.jobs["make"].error.ename == "ResultTooLarge" and "max_result_bytes=1,048,576" in str(run.jobs["make"].error)
    assert ov.run(GRAPH, handlers, cluster=client, journal=False, store=str(tmp_path / "s")).wait(60).succeeded


# The kernel of the crash test: a big result, then a job that waits to be killed.
KERNEL = textwrap.dedent(
    """
    import json, os, sys, time
    import psutil
    import overseer_nb as ov

    journal, store, flag, pids = sys.argv[1:5]

    def make(job):
        import numpy
        return numpy.full(40 * 2**20 // 8, 3.0)

    def slow(job):
        import os, time
        while not os.path.exists(job.args["flag"]):
            time.sleep(0.05)
        return float(job.inputs["make"].sum())

    ov.use_cluster(engines=2)
    with open(pids, "w") as f:
        json.dump([p.pid for p in psutil.Process().children(recursive=True)], f)
    run = ov.run({"make": [], "slow": ["make"]}, {"make": make, "slow": slow}, args={"flag": flag},
                 journal=journal, store=store)
    print(run.run_id, flush=True)
    run.wait()
    """
)


@pytest.mark.cluster
def test_a_big_result_survives_a_killed_kernel_and_is_not_made_again_on_resume(client, tmp_path):
    journal, store, flag, pids = (str(tmp_path / n) for n in ("j.sqlite", "store", "flag", "pids.json"))
    script = tmp_path / "kernel.py"
    script.write_text(KERNEL)
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"))
    env.pop("OVERSEER_NB_JOURNAL", None)
    kernel = subprocess.Popen([sys.executable, str(script), journal, store, flag, pids], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        run_id = kernel.stdout.readline().strip()
        assert run_id, kernel.stderr.read()
        wait_for(lambda: statuses(journal, run_id).get("slow") == "started", 60, "job slow starting")
        # the result is complete in the store (written in the background): a crash now loses nothing
        # (one killed with its engines before that runs again on resume, as the missing-file test shows)
        wait_for(lambda: any(n.endswith(".ovnb") for _d, _s, files in os.walk(store) for n in files), 60,
                 "the result file being written")
        os.killpg(kernel.pid, signal.SIGKILL)
        kernel.wait(10)
    finally:
        if kernel.poll() is None:
            os.killpg(kernel.pid, signal.SIGKILL)
            kernel.wait(10)
        if os.path.exists(pids):
            with open(pids) as f:
                kill_pids(json.load(f))  # the kernel's cluster: nothing of it is left running
        kernel.stdout.close()
        kernel.stderr.close()

    # a new process would see the same: the journal says where the result is, the store has it
    run = ov.load_run(run_id, journal=journal)
    assert run.statuses == {"make": "finished", "slow": "unstarted"}
    value = run.results["make"]
    assert value.shape == (40 * MIB // 8,) and float(value.sum()) == 3.0 * (40 * MIB // 8)
    assert ov.load_run(run_id, journal=journal).jobs["make"].stored.path.startswith(store)

    def make(job):
        raise AssertionError("make finished before the crash; it must not run again")

    def slow(job):
        return float(job.inputs["make"].sum())

    with open(flag, "w"):
        pass
    run.resume({"make": make, "slow": slow}, cluster=client).wait(60)
    assert run.succeeded, run.summary()
    assert len(run.jobs["make"].attempts) == 1
    assert run.results["slow"] == 3.0 * (40 * MIB // 8)


@pytest.mark.cluster
def test_a_missing_store_file_is_said_and_its_job_runs_again_on_resume(client, tmp_path):
    journal = str(tmp_path / "j.sqlite")
    handlers = big_handlers(4 * MIB)
    first = ov.run(GRAPH, handlers, cluster=client, journal=journal, store=str(tmp_path / "store")).wait(60)
    assert first.succeeded
    os.unlink(first.jobs["make"].stored.path)

    loaded = ov.load_run(first.run_id, journal=journal)
    gone = loaded.results["make"]
    assert isinstance(gone, UnloadableResult) and "not in the store" in repr(gone) and "run.resume()" in repr(gone)
    loaded.resume(handlers, cluster=client).wait(60)
    assert "make runs again: its result file is gone from the store" in loaded.message
    assert loaded.succeeded and len(loaded.jobs["make"].attempts) == 2
    assert float(loaded.results["make"].sum()) == 2.0 * (4 * MIB // 8)
    assert [len(loaded.jobs[j].attempts) for j in ("left", "right")] == [1, 1]  # they had their input already


@pytest.mark.cluster
@pytest.mark.slow
def test_an_engine_that_dies_before_its_result_reached_the_store_makes_it_run_again(own_cluster, tmp_path):
    _cluster, client = own_cluster
    nbytes = 1500 * MIB  # the file takes seconds to write: the engine is killed well before it is complete
    pids = engine_pids(client)
    killed: list[int] = []
    runs: dict[str, ov.Run] = {}

    def kill_the_maker(run, step):
        for t in step.transitions:
            if t.job == "make" and t.new == "finished" and not killed:
                pid = pids[run.jobs["make"].engine]
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)

    handlers = big_handlers(nbytes)
    graph = ov.JobGraph(GRAPH)
    from overseer_nb.execution import connect

    executor = connect(client, graph=graph, handlers=handlers)
    runs["r"] = run = ov.Run(graph, handlers, executor, store=str(tmp_path / "store"))
    run.subscribe(kill_the_maker)
    run.start().wait(240)

    assert killed, "the parent never finished"
    assert run.succeeded, run.summary()
    attempts = run.jobs["make"].attempts
    assert len(attempts) == 2 and attempts[0].outcome == "finished"
    # never silently wrong input: both children summed the whole, new result
    expected = 2.0 * (nbytes // 8)
    assert run.results["left"][0] == run.results["right"][0] == expected
    wait_until(run.jobs["make"].stored.exists, timeout=60)  # written in the background
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE


@pytest.mark.cluster
@pytest.mark.skipif(subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0,
                    reason="needs unshare -m (root) to give engines a folder of their own")
def test_engines_that_see_another_folder_get_results_relayed_and_the_run_finishes(tmp_path):
    """Engines in a mount namespace of their own see a different folder at the store's path, as an
    engine on another host without a shared file system does."""
    import logging

    import ipyparallel as ipp

    from overseer_nb.execution import LOCAL_CONTROLLER_ARGS

    store = tmp_path / "store"
    store.mkdir()
    cluster = ipp.Cluster(n=0, controller_ip="127.0.0.1", controller_args=list(LOCAL_CONTROLLER_ARGS),
                          log_level=logging.WARNING)
    cluster.start_controller_sync()
    engine_file = os.path.join(cluster.profile_dir, "security", f"ipcontroller-{cluster.cluster_id}-engine.json")
    engines = [
        subprocess.Popen(
            ["unshare", "-m", "sh", "-c", 'mount -t tmpfs tmpfs "$0" && exec "$1" -m ipyparallel.engine --file="$2"'
             " --log-level=40", str(store), sys.executable, engine_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        for _ in range(2)
    ]
    client = None
    try:
        client = cluster.connect_client_sync()
        client.wait_for_engines(2, timeout=60)
        run = ov.run(GRAPH, big_handlers(8 * MIB), cluster=client, journal=False, store=str(store)).wait(60)
        assert run.succeeded, run.summary()
        assert run.results["left"][0] == 2.0 * MIB
        assert run.message.startswith("results are relayed through the kernel: engine")
        assert "Give every engine and the kernel a folder they share" in run.message
        assert isinstance(run.jobs["make"].result_data, bytes)  # relayed, as before the store
        assert os.listdir(store) == []  # and the kernel's probe was cleaned up
    finally:
        procs = []
        for p in engines:
            try:
                procs.append(psutil.Process(p.pid))
                procs.extend(psutil.Process(p.pid).children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        if client is not None:
            client.close()
        for proc in procs:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        for p in engines:
            p.wait(10)
        cluster.stop_cluster_sync()
        _, alive = psutil.wait_procs(procs, timeout=10)
        assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.cluster
def test_prune_deletes_old_results_but_never_those_of_a_run_in_progress(client, tmp_path):
    journal, store, flag = str(tmp_path / "j.sqlite"), str(tmp_path / "store"), str(tmp_path / "flag")
    done = ov.run(GRAPH, big_handlers(2 * MIB), cluster=client, journal=journal, store=store).wait(60)
    wait_until(done.jobs["make"].stored.exists, timeout=30)  # written in the background

    def make(job):
        import numpy

        return numpy.ones(MIB)

    def wait_for_flag(job):
        import os

        while not os.path.exists(job.args["flag"]):
            time.sleep(0.05)
        return float(job.inputs["make"].sum())

    live = ov.run({"make": [], "wait": ["make"]}, {"make": make, "wait": wait_for_flag}, args={"flag": flag},
                  cluster=client, journal=journal, store=store)
    try:
        wait_until(lambda: live.statuses["wait"] == "started", timeout=30)
        wait_until(live.jobs["make"].stored.exists, timeout=30)
        usage = {row.run_id: row for row in ov.store_usage(store=store, journal=journal)}
        assert usage[live.run_id].state == "running" and usage[done.run_id].state == "done"
        assert usage[done.run_id].files == 1 and usage[done.run_id].nbytes > 2 * MIB

        dry = ov.prune(older_than=0, store=store, journal=journal, dry_run=True)
        assert [r.run_id for r in dry] == [done.run_id] and os.path.exists(done.jobs["make"].stored.path)
        assert "1 run in progress kept" in dry.title
        pruned = ov.prune(older_than=0, store=store, journal=journal)
        assert [r.run_id for r in pruned] == [done.run_id] and pruned[0].pruned
        assert not os.path.exists(done.jobs["make"].stored.path)
        assert live.jobs["make"].stored.exists()
        assert "not in the store" in repr(done.results["make"])
    finally:
        with open(flag, "w"):
            pass
        live.wait(60)
    assert live.results["wait"] == float(MIB)
    with pytest.raises(ov.OptionError, match="say which results to delete"):
        ov.prune(store=store, journal=journal)
    with pytest.raises(ov.OptionError, match="older_than must be"):
        ov.prune(older_than="soon", store=store, journal=journal)
