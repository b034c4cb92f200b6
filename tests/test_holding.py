"""What an engine does with results and inputs (``execution.holding``), in this process: no cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from overseer_nb.execution import holding
from overseer_nb.store import result_path


def keep(value, root, *, job="make", attempt=1, hold=True, inline=64 * 1024, bound=2**30):
    return holding.keep(value, root=str(root), run_id="r1", job=job, attempt=attempt, inline_limit=inline,
                        memory_bound=bound, hold=hold)


@pytest.fixture(autouse=True)
def empty_engine_memory():
    holding.release_run("r1")
    yield
    holding.release_run("r1")


def wait_written(ref):
    while os.path.exists(ref["path"] + holding.PENDING):
        threading.Event().wait(0.01)


def test_small_results_come_back_inline_and_big_ones_as_a_reference(tmp_path):
    data, ref = keep({"a": 1}, tmp_path)
    assert ref is None and isinstance(data, bytes)
    big = np.arange(1_000_000.0)
    data, ref = keep(big, tmp_path)
    assert data is None and ref["path"] == result_path(str(tmp_path), "r1", "make", 1)
    assert ref["type"] == "numpy.ndarray" and ref["summary"] == "numpy.ndarray shape=(1000000,) dtype=float64"
    assert holding.resolve("make", ref) is big  # held here: the object itself, no copy
    wait_written(ref)
    holding.release([ref["path"]])
    back = holding.resolve("make", ref)  # now from the file, memory-mapped
    assert back is not big and np.array_equal(back, big)
    assert holding.held()[0] == 1 and holding.resolve("make", ref) is back  # kept for the next job here
    holding.release([ref["path"]])
    assert holding.held() == (0, 0)


def test_items_and_lists_of_inputs(tmp_path):
    _data, ref = keep(list(range(100_000)), tmp_path)
    assert holding.resolve("grid", {"item": 7, "of": ref}) == 7
    small, _ = keep([10, 20, 30], tmp_path, job="small")
    assert holding.resolve("grid", {"item": 2, "of": small}) == 30
    assert holding.resolve("train", {"items": [small, {"item": 1, "of": small}, None]}) == [[10, 20, 30], 20, None]


def test_a_result_no_child_needs_is_not_held(tmp_path):
    _data, ref = keep(np.ones(100_000), tmp_path, hold=False)
    assert holding.held() == (0, 0)
    wait_written(ref)
    assert os.path.exists(ref["path"])


def test_memory_is_bounded_oldest_written_first(tmp_path):
    refs = [keep(np.ones(100_000), tmp_path, job=f"j{i}", bound=2_000_000)[1] for i in range(4)]
    for ref in refs:
        wait_written(ref)
    holding._shrink(None)
    count, nbytes = holding.held()
    assert nbytes <= 2_000_000 and count == 2
    assert all(np.array_equal(holding.resolve("j", ref), np.ones(100_000)) for ref in refs)  # all readable


def test_an_input_whose_writer_died_is_lost_not_waited_for_forever(tmp_path):
    path = result_path(str(tmp_path), "r1", "make", 1)
    os.makedirs(os.path.dirname(path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    with open(path + holding.PENDING, "w") as f:
        f.write(f"{socket.gethostname()} {int(dead.stdout)}")
    with pytest.raises(holding.InputLost, match=r"the result of 'make' could not be read: the engine writing it"):
        holding.resolve("make", {"path": path})


def test_an_input_whose_write_failed_says_why(tmp_path):
    path = result_path(str(tmp_path), "r1", "make", 1)
    os.makedirs(os.path.dirname(path))
    with open(path + holding.FAILED, "w") as f:
        f.write("OSError: No space left on device")
    with pytest.raises(holding.InputLost, match="writing it to the store failed: OSError: No space left"):
        holding.resolve("make", {"path": path})
    os.unlink(path + holding.FAILED)
    with pytest.raises(holding.InputLost, match="is not in the store"):
        holding.resolve("make", {"path": path})


def test_a_store_that_cannot_be_written_sends_the_result_back_inline(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    data, ref = keep(np.ones(100_000), blocker)
    assert ref is None and np.array_equal(holding.resolve("make", data), np.ones(100_000))
