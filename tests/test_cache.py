"""The dataset cache: damaged files are rebuilt, killed writers' temporary files are cleaned up,
and predefined partitions survive the round trip."""

import dataclasses
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from signdistill.data import cache
from signdistill.data.cache import atomic_write_bytes, cached, remove_stale_temporaries

from fakes import BlobSource

CONFIG = {"what": "blobs"}


def _build_counter():
    calls = []

    def build():
        calls.append(1)
        return BlobSource().load(None)

    return build, calls


@pytest.mark.parametrize(
    "damage",
    [lambda p: p.write_bytes(p.read_bytes()[:-200]), lambda p: p.write_bytes(b"not a zip")],
    ids=["truncated", "garbage"],
)
def test_a_damaged_cache_file_is_named_deleted_and_rebuilt(tmp_path, caplog, damage):
    build, calls = _build_counter()
    first = cached(tmp_path, "blobs", CONFIG, build)
    (path,) = tmp_path.glob("blobs-*.npz")
    damage(path)
    with caplog.at_level(logging.WARNING):
        again = cached(tmp_path, "blobs", CONFIG, build)
    assert len(calls) == 2 and np.array_equal(first.x, again.x)
    assert f"{path}: unreadable dataset cache" in caplog.text and "rebuilding" in caplog.text
    assert cached(tmp_path, "blobs", CONFIG, build).fingerprint == first.fingerprint
    assert len(calls) == 2  # the rebuilt file is read back


def test_partition_survives_the_cache_and_enters_the_fingerprint(tmp_path):
    plain = BlobSource().load(None)
    partition = np.where(np.arange(len(plain.y)) % 5 == 0, "test", "train")
    split = dataclasses.replace(plain, partition=partition)
    loaded = cached(tmp_path, "blobs", CONFIG, lambda: split)
    loaded = cached(tmp_path, "blobs", CONFIG, lambda: pytest.fail("rebuilt"))
    assert loaded.partition.tolist() == partition.tolist()
    assert loaded.fingerprint == split.fingerprint != plain.fingerprint


def _temporary(folder: Path, pid: int, host: str = cache._HOST, age_s: float = 0.0) -> Path:
    path = folder / f".blobs-0123.npz.{pid}@{host}.k2j4h5g6.tmp"
    path.write_bytes(b"half")
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path):
    dead = _temporary(tmp_path, _dead_pid())
    live = _temporary(tmp_path, os.getppid())  # pytest's parent: running
    own = _temporary(tmp_path, os.getpid())
    elsewhere = _temporary(tmp_path, 1234, host="other-host")  # its pid means nothing here
    abandoned = _temporary(tmp_path, 1235, host="other-host", age_s=2 * cache.STALE_AFTER_S)
    foreign = tmp_path / ".notes.tmp"  # not ours, however old
    foreign.write_text("x")
    os.utime(foreign, (0, 0))
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([dead, abandoned])
    assert all(p.exists() for p in (live, own, elsewhere, foreign))


def test_a_killed_writer_leaves_a_temporary_file_the_next_write_removes(tmp_path):
    """A process killed while writing the cache (SIGKILL: no cleanup runs)."""
    target = tmp_path / "blobs-0123.npz"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from signdistill.data.cache import atomic_write_bytes; "
            "atomic_write_bytes(Path(sys.argv[1]), lambda f: (f.write(b'x'), time.sleep(60)))",
            str(target),
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob(".*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.05)
        (left,) = tmp_path.glob(".*.tmp")
        assert left.name.startswith(f".{target.name}.{writer.pid}@")
    finally:
        writer.kill()
        writer.wait()
    atomic_write_bytes(tmp_path / "other.npz", lambda f: f.write(b"ok"))
    assert not left.exists() and (tmp_path / "other.npz").read_bytes() == b"ok"
