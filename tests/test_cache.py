"""The dataset cache: damaged files are rebuilt, killed writers' temporary files are cleaned up,
and predefined partitions survive the round trip."""

import dataclasses
import logging

import numpy as np
import pytest

from signdistill.data.cache import cached

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
