"""Shared fixtures: a real local ipyparallel cluster of 2 engines, started once per session."""

from __future__ import annotations

import logging
import os
import time

import pytest

os.environ.setdefault("OVERSEER_NB_JOURNAL", ":memory:")
# tests choose their clusters themselves; %load_ext must not start one in the background
os.environ.setdefault("OVERSEER_NB_PRESTART", "0")

ENGINES = 2


def start_cluster(n: int = ENGINES, **kwargs):
    """Start a local cluster of ``n`` engines on 127.0.0.1; return (cluster, client)."""
    import ipyparallel as ipp

    from overseer_nb.execution.cluster import LOCAL_CONTROLLER_ARGS

    cluster = ipp.Cluster(
        n=n,
        controller_ip="127.0.0.1",
        controller_args=list(LOCAL_CONTROLLER_ARGS),
        log_level=logging.WARNING,
        **kwargs,
    )
    client = cluster.start_and_connect_sync(n=n)
    return cluster, client


def stop_cluster(cluster, client) -> None:
    try:
        client.close()
    finally:
        cluster.stop_cluster_sync()


def wait_for_engines(client, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(client.ids) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(client.ids)} of {n} engines after {timeout} s")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def shared_cluster():
    """A 2-engine cluster shared by the tests that do not harm their engines."""
    cluster, client = start_cluster()
    yield cluster, client
    stop_cluster(cluster, client)


@pytest.fixture
def client(shared_cluster):
    """The shared cluster's client, with all its engines up."""
    cluster, client = shared_cluster
    if len(client.ids) < ENGINES:
        cluster.start_engines_sync(n=ENGINES - len(client.ids))
        wait_for_engines(client, ENGINES)
    return client


@pytest.fixture
def own_cluster():
    """A fresh 2-engine cluster for a test that kills or freezes engines."""
    cluster, client = start_cluster()
    yield cluster, client
    stop_cluster(cluster, client)
