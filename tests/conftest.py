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


@pytest.fixture(autouse=True)
def close_tmp_journals(request):
    """Stop the writer threads of journal files a test opened in its tmp_path."""
    # read before the test ends: a fixture's value is gone at teardown
    tmp = str(request.getfixturevalue("tmp_path")) if "tmp_path" in request.fixturenames else None
    yield
    if tmp is None:
        return
    from overseer_nb.journal import file as journal_file

    for path, journal in list(journal_file._journals.items()):
        if path.startswith(tmp):
            journal.close()


def wait_until(cond, timeout: float = 30.0, step: float = 0.02) -> None:
    """Poll ``cond()`` until it is true; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(step)


def rows(path, query: str, params=()) -> list:
    """The rows ``query`` gives on the SQLite file ``path`` (a fresh connection, as another process reads it)."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def spy_executor():
    """A one-worker ThreadExecutor that remembers which jobs were submitted (``.submitted``)."""
    import overseer_nb as ov

    class SpyExecutor(ov.ThreadExecutor):
        def __init__(self):
            super().__init__(workers=1)
            self.submitted: list[str] = []

        def submit(self, task):
            self.submitted.append(task.job)
            super().submit(task)

    return SpyExecutor()


@pytest.fixture
def shell():
    """An IPython shell with the extension loaded and an empty namespace."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.reset(new_session=False)
    ip.run_line_magic("load_ext", "overseer_nb")
    yield ip
    ip.run_line_magic("unload_ext", "overseer_nb")
    ip.reset(new_session=False)
