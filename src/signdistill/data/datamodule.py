"""One LightningDataModule for every source: in-memory tensors, seeded splits, train-only stats.

The datasets here are a few thousand short recordings (tens to hundreds of MB), so each split is
gathered into tensors once and served by a plain DataLoader over a TensorDataset; worker
processes would only add start-up and copy costs (measured in benchmarks/data_loading.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)

from signdistill.data.recordings import Recordings
from signdistill.data.splits import Split, SplitHow, check_split_settings, split_indices
from signdistill.errors import DataError

log = logging.getLogger(__name__)

EVAL_BATCH = 512


class Source(Protocol):
    """What a data source provides: the whole dataset, cached under ``cache_dir``.

    A source whose recordings come with a fixed train/test split (``Recordings.partition``) also
    has a true ``partitioned`` attribute, so ``data.split=predefined`` is checked before loading;
    a source without the attribute has no partitions. A source whose groups are not subjects (or
    sessions) has a false ``has_subjects`` attribute, so ``data.split=subject`` is refused before
    loading; a source without the attribute names its subjects.
    """

    def load(self, cache_dir: str | Path) -> Recordings: ...


class SignDataModule(L.LightningDataModule):
    """Loads a source once, splits it, and serves (x, y[, teacher_logits]) batches.

    The constructor only checks its arguments (no I/O): ``prepare`` loads and splits.
    """

    def __init__(
        self,
        source: Source,
        name: str = "data",
        split: SplitHow = "stratified",
        split_seed: int = 0,
        fold: int | None = None,
        n_folds: int = 5,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        batch_size: int = 32,
        cache_dir: str = ".cache/signdistill",
    ) -> None:
        super().__init__()
        check_split_settings(split, fold, n_folds, val_fraction, test_fraction)
        _check_source_split(source, split)
        if batch_size < 2:
            raise DataError(
                f"data.batch_size={batch_size}: must be >= 2 (BatchNorm needs two recordings "
                "per training batch)"
            )
        self.source = source
        self.name = name
        self.split_config = {
            "how": split,
            "seed": split_seed,
            "fold": fold,
            "n_folds": n_folds,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
        }
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.recordings: Recordings | None = None
        self.split: Split | None = None
        self.teacher_logits: torch.Tensor | None = None
        self._parts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def prepare(self) -> Recordings:
        """Load (or generate) the dataset and split it; idempotent."""
        if self.recordings is None:
            rec = self.source.load(self.cache_dir)
            if rec.partition is not None and self.split_config["how"] != "predefined":
                log.warning(
                    "%s: data.split=%s pools the source's predefined train/test partitions and "
                    "splits them anew; data.split=predefined keeps them",
                    self.name,
                    self.split_config["how"],
                )
            split = split_indices(rec.y, rec.groups, partition=rec.partition, **self.split_config)
            if len(split.train) < 2:
                raise DataError(
                    f"{self.name}: {len(split.train)} training recording(s); at least 2 are needed"
                )
            self.recordings, self.split = rec, split
            log.info(
                "%s: %d recordings x %d channels x %d steps, %d classes; split %d/%d/%d",
                self.name,
                *self.recordings.x.shape,
                self.recordings.n_classes,
                len(self.split.train),
                len(self.split.val),
                len(self.split.test),
            )
        return self.recordings

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def tensors(self, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of one split: 'train', 'val' or 'test' (gathered once, then reused)."""
        if part not in self._parts:
            rec = self.prepare()
            idx = getattr(self.split, part)
            x, y = rec.x[idx], rec.y[idx].astype("int64")
            self._parts[part] = (torch.from_numpy(x), torch.from_numpy(y))
        return self._parts[part]

    def channel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std over the training split only (never val/test)."""
        x, _ = self.tensors("train")
        return x.mean(dim=(0, 2)), x.std(dim=(0, 2))

    def set_teacher_logits(self, logits: torch.Tensor | None) -> None:
        """Serve precomputed teacher logits alongside each training batch (None to stop)."""
        if logits is not None and len(logits) != len(self.split.train):
            raise ValueError(f"{len(logits)} teacher logits for {len(self.split.train)} recordings")
        self.teacher_logits = logits

    @property
    def classes(self) -> list[str]:
        return self.prepare().classes

    @property
    def channels(self) -> list[str]:
        return self.prepare().channels

    def describe(self) -> dict[str, Any]:
        """What identifies this data and split (for teacher keys and run params)."""
        rec = self.prepare()
        return {
            "name": self.name,
            "fingerprint": rec.fingerprint,
            "shape": list(rec.x.shape),
            **{f"split_{k}": v for k, v in self.split_config.items()},
        }

    def _loader(self, tensors: tuple[torch.Tensor, ...], batches: BatchSampler) -> DataLoader:
        # batch_size=None: the BatchSampler's index lists go straight to TensorDataset, one gather
        # per batch instead of per-sample indexing and collation.
        return DataLoader(TensorDataset(*tensors), sampler=batches, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        x, y = self.tensors("train")
        extra = () if self.teacher_logits is None else (self.teacher_logits,)
        batches = NoSingletonBatchSampler(RandomSampler(x), self.batch_size, drop_last=False)
        return self._loader((x, y, *extra), batches)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def _eval_loader(self, part: str) -> DataLoader:
        x, y = self.tensors(part)
        return self._loader((x, y), BatchSampler(SequentialSampler(x), EVAL_BATCH, drop_last=False))


class NoSingletonBatchSampler(BatchSampler):
    """A BatchSampler whose final batch is never a single recording: it joins the one before.

    Training in BatchNorm's train mode on a batch of one fails ("Expected more than 1 value per
    channel"), which happens whenever the training set is one more than a multiple of the batch
    size. Folding the recording into the previous batch (one batch of ``batch_size + 1``) keeps
    every recording in every epoch, and leaves every other batching exactly as before.
    """

    def __iter__(self) -> Iterator[list[int]]:
        batches = list(super().__iter__())  # index lists: a few thousand ints per epoch
        if self._folds(len(batches[-1]) if batches else 0, len(batches)):
            last = batches.pop()
            batches[-1] = batches[-1] + last
        yield from batches

    def __len__(self) -> int:
        n_batches = super().__len__()
        last = len(self.sampler) - (n_batches - 1) * self.batch_size
        return n_batches - int(self._folds(last, n_batches))

    def _folds(self, last: int, n_batches: int) -> bool:
        """Whether a final batch of ``last`` recordings (of ``n_batches``) joins the one before."""
        return n_batches > 1 and last == 1 < self.batch_size


def _check_source_split(source: Source, split: SplitHow) -> None:
    """Refuse a split the source cannot give: predefined partitions it lacks, or subjects it does
    not name (each recording would be its own subject)."""
    if split == "predefined" and not getattr(source, "partitioned", False):
        raise DataError(
            f"data.split=predefined: data.source ({type(source).__name__}) has no predefined "
            "train/test partitions; for a folder of train/ and test/ folders set "
            "data.source.layout=splits (data=ts always has them), or use "
            "data.split=stratified or subject"
        )
    if split == "subject" and not getattr(source, "has_subjects", True):
        fix = "use data.split=stratified"
        if hasattr(source, "subject_pattern"):
            fix = (
                "set data.source.subject_pattern (a regex on the file names giving the "
                "subject, e.g. '(subject\\d+)_'), or " + fix
            )
        raise DataError(
            f"data.split=subject: data.source ({type(source).__name__}) names no subjects, "
            f"so every recording would be its own subject; {fix}"
        )
