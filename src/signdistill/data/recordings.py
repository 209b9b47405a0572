"""The one shape every data source yields, and the checks that keep bad input out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, get_args

import numpy as np

from signdistill.errors import DataError

Partition = Literal["train", "val", "test"]
PARTITIONS: tuple[str, ...] = get_args(Partition)
PARTITION_DTYPE = "<U5"  # fits every name in PARTITIONS


@dataclass(frozen=True)
class Recordings:
    """A whole dataset in memory.

    x: float32 (N, C, T) signals; y: int64 (N,) class indices into ``classes``;
    groups: (N,) group ids (subject or recording session) so splits can hold a group out;
    partition: None, or (N,) ``'train'``/``'val'``/``'test'`` when the source comes with a fixed
    split (``data.split=predefined`` uses it; ``val`` is optional, ``train`` and ``test`` are not).
    """

    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    channels: list[str]
    groups: np.ndarray
    partition: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.partition is not None:
            # One dtype whatever the source (only 'val' and 'test' would make '<U4'), so the
            # fingerprint depends on the values only; unknown values stay for validate() to name.
            partition = np.asarray(self.partition)
            if set(partition.tolist()) <= set(PARTITIONS):
                partition = partition.astype(PARTITION_DTYPE)
            object.__setattr__(self, "partition", partition)
        validate(self)
        # One memory layout whatever the source: a freshly parsed array and the same array loaded
        # from the cache must give bit-identical training (CPU kernels round differently on
        # strided inputs, and 300 epochs amplify that into points of accuracy).
        object.__setattr__(self, "x", np.ascontiguousarray(self.x))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @cached_property
    def fingerprint(self) -> str:
        """A short content hash: two runs with the same fingerprint saw the same data.

        Cached: the arrays never change, and hashing the default data takes about half a second.
        """
        h = hashlib.sha256()
        for arr in (self.x, self.y, self.groups.astype(str)):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\x1f".join([*self.classes, "|", *self.channels]).encode())
        if self.partition is not None:  # only then: the other sources keep their fingerprints
            h.update(b"\x1epartition")
            h.update(self.partition.tobytes())
        return h.hexdigest()[:16]


def validate(rec: Recordings, source: str = "dataset") -> None:
    """Raise DataError unless ``rec`` is a consistent, finite dataset."""
    if rec.x.ndim != 3:
        raise DataError(f"{source}: signals must be (N, C, T), got shape {rec.x.shape}")
    n, c, _ = rec.x.shape
    if rec.x.dtype != np.float32:
        raise DataError(f"{source}: signals must be float32, got {rec.x.dtype}")
    if c != len(rec.channels):
        raise DataError(f"{source}: {c} channels in the data but {len(rec.channels)} names")
    if rec.y.shape != (n,) or rec.groups.shape != (n,):
        raise DataError(f"{source}: labels/groups must have one entry per recording ({n})")
    if len(rec.classes) < 2:
        raise DataError(
            f"{source}: {len(rec.classes)} class(es) {rec.classes}; a classifier needs at least 2"
        )
    if n and (rec.y.min() < 0 or rec.y.max() >= len(rec.classes)):
        raise DataError(f"{source}: labels outside 0..{len(rec.classes) - 1}")
    if rec.partition is not None:
        _validate_partition(rec.partition, n, source)
    if not np.isfinite(rec.x).all():
        bad = int(np.argwhere(~np.isfinite(rec.x).reshape(n, -1).all(axis=1))[0, 0])
        raise DataError(f"{source}: recording {bad} contains NaN or inf values")


def _validate_partition(partition: np.ndarray, n: int, source: str) -> None:
    """A partition names one of PARTITIONS per recording, with a training and a test part."""
    if partition.shape != (n,):
        raise DataError(f"{source}: partition must have one entry per recording ({n})")
    unknown = sorted(set(partition.tolist()) - set(PARTITIONS))
    if unknown:
        raise DataError(f"{source}: unknown partition(s) {unknown}; expected {PARTITIONS}")
    for needed in ("train", "test"):
        if needed not in partition:
            raise DataError(f"{source}: no recordings in the predefined {needed!r} partition")
