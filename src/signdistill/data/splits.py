"""Train/validation/test splits: stratified random, k-fold, leave-groups-out (subjects), or the
source's own predefined partitions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from signdistill.errors import DataError

SplitHow = Literal["stratified", "subject", "predefined"]
SPLITS: tuple[str, ...] = get_args(SplitHow)


@dataclass(frozen=True)
class Split:
    """Index arrays into the dataset; disjoint and covering every recording."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def check_split_settings(
    how: str, fold: int | None, n_folds: int, val_fraction: float, test_fraction: float
) -> None:
    """Refuse split settings that no data could satisfy, naming the ``data.`` key.

    Cheap and data-free, so the DataModule runs it when it is constructed (before any loading).
    """
    if how not in SPLITS:
        raise DataError(f"data.split={how!r}: expected one of {SPLITS}")
    if n_folds < 2:
        raise DataError(f"data.n_folds={n_folds}: must be >= 2")
    if fold is not None and how == "predefined":
        raise DataError(
            f"data.fold={fold}: data.split=predefined has one fixed test set; set data.fold=null "
            "(data.split_seed varies the validation draw)"
        )
    if fold is not None and not 0 <= fold < n_folds:
        raise DataError(f"data.fold={fold}: must be in 0..{n_folds - 1} (data.n_folds={n_folds})")
    if not 0 < val_fraction < 1:
        raise DataError(f"data.val_fraction={val_fraction}: must be in (0, 1)")
    if how != "predefined" and not (0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(
            f"data.test_fraction={test_fraction}: must be in (0, 1) and leave room for training "
            f"(data.val_fraction={val_fraction})"
        )


def split_indices(
    y: np.ndarray,
    groups: np.ndarray,
    how: str = "stratified",
    seed: int = 0,
    fold: int | None = None,
    n_folds: int = 5,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    partition: np.ndarray | None = None,
) -> Split:
    """Split recordings for one run.

    ``stratified`` with ``fold=None``: one stratified shuffle split (70/10/20 by default, as in the
    LIS paper) drawn from ``seed``. With ``fold=k``: the test set is fold k of a seeded stratified
    ``n_folds``-fold partition, validation a stratified draw from the rest. ``subject``: whole
    groups are held out (test, then validation), rotated by ``fold``, so no group is in two splits.
    ``predefined``: the source's ``partition`` (train/val/test per recording); without a ``val``
    partition, validation is a stratified ``val_fraction`` draw from the training partition only.
    """
    check_split_settings(how, fold, n_folds, val_fraction, test_fraction)
    if how == "predefined":
        return _predefined_split(y, partition, seed, val_fraction)
    if how == "subject":
        return _group_split(groups, seed, fold or 0, val_fraction, test_fraction)
    _check_class_sizes(y, n_folds if fold is not None else 3)
    idx = np.arange(len(y))
    try:
        if fold is None:
            rest, test = train_test_split(
                idx, test_size=test_fraction, stratify=y, random_state=seed
            )
        else:
            folds = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(idx, y)
            rest, test = list(folds)[fold]
    except ValueError as e:  # sklearn's message says which constraint failed
        raise DataError(f"cannot split {len(y)} recordings: {e}") from e
    train, val = validation_draw(
        y, rest, val_fraction / (1 - test_fraction), seed, "data.val_fraction"
    )
    return Split(np.sort(train), np.sort(val), np.sort(test))


def validation_draw(
    y: np.ndarray, pool: np.ndarray, fraction: float, seed: int, key: str
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified validation draw of ``fraction`` of ``pool`` (indices into ``y``), but at least
    one recording of every class: on a small dataset (5 training recordings per class, 10 classes)
    a plain 10 % draw would leave classes out of validation, which stratification refuses. Needs
    two recordings of each class in ``pool`` (one stays in training); the error names the class
    and ``key``."""
    classes, counts = np.unique(y[pool], return_counts=True)
    if (counts < 2).any():
        small = classes[counts < 2][0]
        raise DataError(
            f"{key}={fraction:.3g}: class index {int(small)} has 1 recording to train on; a "
            "validation draw needs at least 2 per class (one stays in training). Add recordings "
            "of that class, or a val/ partition (data=folder data.source.layout=splits)"
        )
    n_val = max(math.ceil(fraction * len(pool)), len(classes))
    if len(pool) - n_val < len(classes):
        raise DataError(
            f"{key}={fraction:.3g}: {len(pool)} recordings of {len(classes)} classes leave too few "
            "to train on after a validation draw with every class; lower it"
        )
    train, val = train_test_split(pool, test_size=n_val, stratify=y[pool], random_state=seed)
    return train, val


def _predefined_split(
    y: np.ndarray, partition: np.ndarray | None, seed: int, val_fraction: float
) -> Split:
    if partition is None:
        raise DataError(
            "data.split=predefined: this source has no predefined train/test partitions (use "
            "data=ts, or data=folder with data.source.layout=splits; or another data.split)"
        )
    idx = np.arange(len(y))
    train, val, test = (idx[partition == part] for part in ("train", "val", "test"))
    if not val.size:
        train, val = validation_draw(y, train, val_fraction, seed, "data.val_fraction")
    return Split(np.sort(train), np.sort(val), test)


def _check_class_sizes(y: np.ndarray, minimum: int) -> None:
    counts = np.bincount(y)
    small = np.flatnonzero(counts < minimum)
    if small.size:
        raise DataError(
            f"class index {int(small[0])} has {int(counts[small[0]])} recordings; at least "
            f"{minimum} are needed to split it into train, validation and test"
        )


def _group_split(
    groups: np.ndarray, seed: int, fold: int, val_fraction: float, test_fraction: float
) -> Split:
    names = np.unique(groups)
    if names.size < 3:
        raise DataError(
            f"data.split=subject needs at least 3 groups (subjects or sessions), found {names.size}"
        )
    order = np.random.default_rng(seed).permutation(names)
    n_test = max(1, round(test_fraction * names.size))
    n_val = max(1, round(val_fraction * names.size))
    if n_test + n_val >= names.size:
        n_test, n_val = 1, 1
    order = np.roll(order, -fold * n_test)
    test_g, val_g = order[:n_test], order[n_test : n_test + n_val]
    idx = np.arange(len(groups))
    test = idx[np.isin(groups, test_g)]
    val = idx[np.isin(groups, val_g)]
    train = idx[~np.isin(groups, np.concatenate([test_g, val_g]))]
    return Split(train, val, test)
