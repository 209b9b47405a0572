"""Splits: stratified, k-fold and leave-groups-out; disjoint, complete, reproducible."""

import re

import numpy as np
import pytest

from signdistill.data.splits import split_indices
from signdistill.errors import DataError

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
        ({"how": "random"}, "data.split='random'"),
        ({"fold": 7}, "data.fold=7"),
        ({"test_fraction": 0.95}, "data.test_fraction=0.95"),
        ({"val_fraction": 0.0}, "data.val_fraction=0.0"),
        ({"n_folds": 1}, "data.n_folds=1"),
        ({"how": "predefined", "fold": 0}, "data.fold=0: data.split=predefined has one fixed"),
        ({"how": "predefined"}, "data.split=predefined: this source has no predefined"),
    ],
)
def test_bad_split_settings_name_the_key(kwargs, message):
    with pytest.raises(DataError, match="^" + re.escape(message)):
        split_indices(Y, GROUPS, **kwargs)


def test_class_too_small_to_split_is_reported():
    y = np.array([0] * 10 + [1] * 2)
    with pytest.raises(DataError, match="class index 1 has 2 recordings"):
        split_indices(y, np.array(["g"] * 12))


def test_subject_split_needs_three_groups():
    with pytest.raises(DataError, match="at least 3 groups"):
        split_indices(Y, np.array(["a", "b"] * 50), how="subject")


PARTITION = np.array(["train", "train", "train", "test", "train"] * 20)  # every class in both


def test_predefined_split_keeps_the_test_partition_and_validates_on_train_only():
    split = split_indices(
        Y, GROUPS, how="predefined", seed=2, val_fraction=0.25, partition=PARTITION
    )
    _assert_partition(split, len(Y))
    assert np.array_equal(split.test, np.flatnonzero(PARTITION == "test"))
    assert (PARTITION[split.val] == "train").all()
    assert np.bincount(Y[split.val], minlength=5).tolist() == [4] * 5  # a stratified quarter
    other = split_indices(
        Y, GROUPS, how="predefined", seed=3, val_fraction=0.25, partition=PARTITION
    )
    assert np.array_equal(other.test, split.test) and not np.array_equal(other.val, split.val)


def test_a_predefined_val_partition_is_used_as_is():
    partition = np.where(np.arange(len(Y)) % 10 == 0, "val", PARTITION)
    split = split_indices(Y, GROUPS, how="predefined", partition=partition)
    assert np.array_equal(split.val, np.flatnonzero(partition == "val"))
    assert np.array_equal(split.train, np.flatnonzero(partition == "train"))


def test_too_few_training_recordings_for_a_validation_draw():
    partition = np.full(len(Y), "test", dtype="<U5")
    partition[[0, 20, 40, 60, 80]] = "train"  # one per class
    with pytest.raises(DataError, match=r"^data\.val_fraction=0\.1: class index 0 has 1 record"):
        split_indices(Y, GROUPS, how="predefined", partition=partition)


def test_a_small_training_partition_still_validates_every_class():
    """10 classes x 5 training recordings (a UCR problem's size): 10 % would be 5 recordings, too
    few to hold every class; the draw takes one of each and leaves four of each to train on."""
    y = np.repeat(np.arange(10), 10)
    partition = np.where(np.arange(100) % 10 < 5, "train", "test").astype("<U5")
    split = split_indices(y, np.zeros(100), how="predefined", partition=partition, seed=4)
    assert np.bincount(y[split.val]).tolist() == [1] * 10
    assert np.bincount(y[split.train]).tolist() == [4] * 10
    assert np.array_equal(split.test, np.flatnonzero(partition == "test"))
