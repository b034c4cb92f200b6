"""The result store on its own: files, memory maps, locations, usage (no cluster)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from overseer_nb.store import (
    ResultStore,
    StoreFileError,
    dumps_parts,
    read_result,
    store_location,
    write_result,
)


def roundtrip(path, value):
    data, buffers = dumps_parts(value)
    write_result(str(path), data, buffers)
    return read_result(str(path)), buffers


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_arrays_travel_out_of_band_and_come_back_as_memory_maps(tmp_path):
    big = np.arange(2_000_000, dtype=np.float64)
    back, buffers = roundtrip(tmp_path / "r.ovnb", {"big": big, "small": [1, "two"]})
    assert [b.nbytes for b in buffers] == [big.nbytes]  # not copied into the pickle
    assert np.array_equal(back["big"], big) and back["small"] == [1, "two"]
    assert back["big"].ctypes.data % 64 == 0  # aligned for numpy


def test_reading_a_large_result_does_not_copy_it_into_memory(tmp_path):
    big = np.ones(100 * 2**20 // 8)  # 100 MiB
    data, buffers = dumps_parts(big)
    write_result(str(tmp_path / "big.ovnb"), data, buffers)
    del big, data, buffers
    before = rss_kib()
    back = read_result(str(tmp_path / "big.ovnb"))
    grown = rss_kib() - before
    assert back.nbytes == 100 * 2**20 and grown < 10 * 1024, f"RSS grew by {grown} KiB"
    assert float(back[12345]) == 1.0


def test_a_child_may_change_its_input_without_changing_the_file(tmp_path):
    back, _ = roundtrip(tmp_path / "r.ovnb", np.zeros(100_000))
    back[0] = 7.0
    assert read_result(str(tmp_path / "r.ovnb"))[0] == 0.0


def test_files_and_folders_are_private(tmp_path):
    path = tmp_path / "store" / "run" / "a.1.ovnb"
    roundtrip(path, 1)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_a_missing_or_cut_file_is_a_clear_error(tmp_path):
    with pytest.raises(StoreFileError, match="is not in the store"):
        read_result(str(tmp_path / "nothing.ovnb"))
    path = tmp_path / "r.ovnb"
    roundtrip(path, np.arange(100_000))
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(StoreFileError, match="cut short"):
        read_result(str(path))
    (tmp_path / "other").write_bytes(b"hello world, not a result")
    with pytest.raises(StoreFileError, match="not an overseer_nb result file"):
        read_result(str(tmp_path / "other"))


def test_location_first_that_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv("OVERSEER_NB_STORE", raising=False)
    journal = str(tmp_path / "j" / "journal.sqlite")
    assert store_location(journal_path=journal) == str(tmp_path / "j" / "results")
    assert store_location(configured=str(tmp_path / "cfg"), journal_path=journal) == str(tmp_path / "cfg")
    monkeypatch.setenv("OVERSEER_NB_STORE", str(tmp_path / "env"))
    assert store_location(configured=str(tmp_path / "cfg")) == str(tmp_path / "env")
    assert store_location(tmp_path / "arg", configured="x") == str(tmp_path / "arg")
    monkeypatch.delenv("OVERSEER_NB_STORE")
    assert store_location(journal_path=":memory:").endswith(f"overseer_nb-{os.getuid()}/results")


def test_usage_per_run_and_deleting_runs(tmp_path):
    store = ResultStore(str(tmp_path / "s"))
    roundtrip(store.path("r1", "a/b", 1), np.zeros(50_000))
    roundtrip(store.path("r1", "c", 2), 1)
    roundtrip(store.path("r2", "a", 1), 2)
    usage = {u.run_id: u for u in store.usage()}
    assert usage["r1"].files == 2 and usage["r2"].files == 1
    assert usage["r1"].nbytes > 400_000
    assert os.path.basename(store.path("r1", "a/b", 1)) == "a%2Fb.1.ovnb"  # one file, inside its run
    freed = store.delete_runs(["r1", "../outside"])
    assert freed == usage["r1"].nbytes
    assert [u.run_id for u in store.usage()] == ["r2"]
