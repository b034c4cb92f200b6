"""Jobs sharing an engine: late interrupts and state left behind. On the shared 2-engine cluster."""

from __future__ import annotations

import os
import signal
import sys
import time

import cloudpickle
import pytest
from conftest import wait_until

import overseer_nb as ov

pytestmark = pytest.mark.cluster

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_an_interrupt_for_an_attempt_that_ended_does_not_hit_the_next_job_on_its_engine(client):
    def blocker(job):
        time.sleep(2)  # holds the other engine, so 'after' runs where 'quick' ran

    def after(job):
        for _ in range(40):  # 0.8 s in small sleeps: an interrupt would land in one
            time.sleep(0.02)
        return "not interrupted"

    graph = {"blocker": [], "quick": [], "after": ["quick"]}
    run = ov.run(graph, {"blocker": blocker, "quick": lambda job: os.getpid(), "after": after},
                 cluster=client, journal=False)
    wait_until(lambda: run.statuses["after"] == "started")
    engine = run.jobs["quick"].engine
    assert run.jobs["after"].engine == engine
    # the timeout of 'quick' firing just after it ended (what the run loop does then)
    run.executor.interrupt("quick", 1, engine, kill_after=30.0)
    # and a SIGINT that reaches the engine late, meant for nobody running now
    client.send_signal(signal.SIGINT, targets=[engine], block=True)
    run.wait(30)
    assert run.statuses == dict.fromkeys(graph, "finished"), run.jobs["after"].error
    assert run.results["after"] == "not interrupted"


def test_the_working_directory_environment_and_signal_handlers_are_put_back_after_each_job(client, tmp_path):
    engine_cwds = set(client[:].apply_sync(os.getcwd))

    def mutate(job):
        import json

        os.chdir(tmp_path)
        os.environ["OVERSEER_NB_LEAK"] = job.type
        os.environ.pop("HOME", None)
        signal.signal(signal.SIGUSR1, lambda *a: None)
        json.overseer_nb_leak = job.type  # a module global: stays, by the rule
        time.sleep(0.5)  # the two run on the two engines
        return os.getpid()

    def look(job):
        import json

        time.sleep(0.3)
        return {
            "pid": os.getpid(),
            "cwd": os.getcwd(),
            "leak": os.environ.get("OVERSEER_NB_LEAK"),
            "home": "HOME" in os.environ,
            "sigusr1": signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL,
            "global": getattr(json, "overseer_nb_leak", None),
        }

    graph = {"m1": [], "m2": [], "c1": ["m1", "m2"], "c2": ["m1", "m2"]}
    run = ov.run(graph, {"m1": mutate, "m2": mutate, "c1": look, "c2": look}, cluster=client, journal=False)
    run.wait(30)
    assert run.succeeded, run.jobs
    assert {run.results["m1"], run.results["m2"]} == {run.results["c1"]["pid"], run.results["c2"]["pid"]}
    for seen in (run.results["c1"], run.results["c2"]):
        assert seen["cwd"] in engine_cwds and seen["cwd"] != str(tmp_path)
        assert seen["leak"] is None and seen["home"] and seen["sigusr1"]
        assert seen["global"] in ("m1", "m2")  # module globals are not put back
