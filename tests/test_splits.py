"""Splits: stratified, k-fold and leave-groups-out; disjoint, complete, reproducible."""

import numpy as np
import pytest

from signdistill.data.recordings import DataError
from signdistill.data.splits import split_indices

Y = np.repeat(np.arange(5), 20)
GROUPS = np.array([f"subject_{i % 5}" for i in range(len(Y))])


def _assert_partition(split, n):
    parts = [split.train, split.val, split.test]
    assert sum(len(p) for p in parts) == n
    assert len(np.unique(np.concatenate(parts))) == n  # disjoint and covering


def test_stratified_split_is_70_10_20_per_class_and_reproducible():
    split = split_indices(Y, GROUPS, seed=3)
    _assert_partition(split, len(Y))
    for part, share in ((split.train, 14), (split.val, 2), (split.test, 4)):
        assert np.bincount(Y[part], minlength=5).tolist() == [share] * 5
    again = split_indices(Y, GROUPS, seed=3)
    assert np.array_equal(split.test, again.test)
    assert not np.array_equal(split.test, split_indices(Y, GROUPS, seed=4).test)


def test_folds_partition_the_test_sets():
    tests = [split_indices(Y, GROUPS, seed=0, fold=k).test for k in range(5)]
    assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(len(Y)))
    for k in range(5):
        _assert_partition(split_indices(Y, GROUPS, seed=0, fold=k), len(Y))


def test_subject_split_keeps_each_subject_in_one_part():
    for fold in range(5):
        split = split_indices(Y, GROUPS, how="subject", seed=1, fold=fold)
        _assert_partition(split, len(Y))
        owners = [set(GROUPS[p]) for p in (split.train, split.val, split.test)]
        assert not owners[0] & owners[1] and not owners[0] & owners[2] and not owners[1] & owners[2]
    held_out = {
        tuple(set(GROUPS[split_indices(Y, GROUPS, "subject", 1, f).test])) for f in range(5)
    }
    assert len(held_out) == 5  # rotating the fold holds out every subject once


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"how": "random"}, "data.split"),
        ({"fold": 7}, "data.fold"),
        ({"test_fraction": 0.95}, "data.test_fraction"),
    ],
)
def test_bad_split_settings_name_the_key(kwargs, message):
    with pytest.raises(DataError, match=message):
        split_indices(Y, GROUPS, **kwargs)


def test_class_too_small_to_split_is_reported():
    y = np.array([0] * 10 + [1] * 2)
    with pytest.raises(DataError, match="class index 1 has 2 recordings"):
        split_indices(y, np.array(["g"] * 12))


def test_subject_split_needs_three_groups():
    with pytest.raises(DataError, match="at least 3 groups"):
        split_indices(Y, np.array(["a", "b"] * 50), how="subject")
