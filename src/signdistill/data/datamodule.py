"""One LightningDataModule for every source: in-memory tensors, seeded splits, train-only stats.

The datasets here are a few thousand short recordings (tens to hundreds of MB), so each split is
gathered into tensors once and served by a plain DataLoader over a TensorDataset; worker
processes would only add start-up and copy costs (measured in benchmarks/data_loading.py).
"""

from __future__ import annotations

import logging
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
from signdistill.data.splits import Split, split_indices

log = logging.getLogger(__name__)

EVAL_BATCH = 512


class Source(Protocol):
    """What a data source provides: the whole dataset, cached under ``cache_dir``."""

    def load(self, cache_dir: str | Path) -> Recordings: ...


class SignDataModule(L.LightningDataModule):
    """Loads a source once, splits it, and serves (x, y[, teacher_logits]) batches."""

    def __init__(
        self,
        source: Source,
        name: str = "data",
        split: str = "stratified",
        split_seed: int = 0,
        fold: int | None = None,
        n_folds: int = 5,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        batch_size: int = 32,
        cache_dir: str = ".cache/signdistill",
    ) -> None:
        super().__init__()
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
            self.recordings = self.source.load(self.cache_dir)
            self.split = split_indices(
                self.recordings.y, self.recordings.groups, **self.split_config
            )
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

    def _loader(self, tensors: tuple[torch.Tensor, ...], batch: int, shuffle: bool) -> DataLoader:
        ds = TensorDataset(*tensors)
        sampler = RandomSampler(ds) if shuffle else SequentialSampler(ds)
        # batch_size=None: the BatchSampler's index lists go straight to TensorDataset, one gather
        # per batch instead of per-sample indexing and collation.
        return DataLoader(
            ds, sampler=BatchSampler(sampler, batch, drop_last=False), batch_size=None
        )

    def train_dataloader(self) -> DataLoader:
        x, y = self.tensors("train")
        extra = () if self.teacher_logits is None else (self.teacher_logits,)
        return self._loader((x, y, *extra), self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.tensors("val"), EVAL_BATCH, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.tensors("test"), EVAL_BATCH, shuffle=False)
