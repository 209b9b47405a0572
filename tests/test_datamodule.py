"""The DataModule: in-memory batches (never one recording in training), train-only statistics,
cached teacher logits, settings checked when constructed, predefined partitions."""

import dataclasses
import re
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from signdistill.data.datamodule import SignDataModule
from signdistill.data.recordings import Recordings
from signdistill.errors import DataError
from signdistill.models import Architecture, ConvPoolLSTM

from fakes import BlobSource


@dataclass(frozen=True)
class ShiftedSource(BlobSource):
    """Recordings of group g4 carry a huge offset: it must not leak into train statistics."""

    def load(self, cache_dir):
        rec = super().load(cache_dir)
        x = rec.x.copy()
        x[rec.groups == "g4"] += 1000.0
        return Recordings(x, rec.y, rec.classes, rec.channels, rec.groups)


def test_statistics_come_from_the_training_split_only(tmp_path):
    # the fold whose test subject is g4 (folds rotate the held-out subject)
    for fold in range(5):
        dm = SignDataModule(ShiftedSource(), split="subject", fold=fold, cache_dir=str(tmp_path))
        if "g4" in set(dm.prepare().groups[dm.split.test]):
            break
    x_train, _ = dm.tensors("train")
    mean, std = dm.channel_stats()
    assert torch.allclose(mean, x_train.mean(dim=(0, 2)))
    assert torch.allclose(std, x_train.std(dim=(0, 2)))
    all_mean = torch.from_numpy(dm.recordings.x).mean(dim=(0, 2))
    assert mean.abs().max() < 10 < all_mean.abs().min()


def test_batches_cover_the_training_split_once_per_epoch(tmp_path):
    dm = SignDataModule(BlobSource(), batch_size=8, cache_dir=str(tmp_path))
    seen = []
    for x, y in dm.train_dataloader():
        assert x.dtype == torch.float32 and x.shape[1:] == (5, 40) and len(x) <= 8
        seen.append(y)
    assert sum(len(y) for y in seen) == len(dm.split.train)


def test_teacher_logits_travel_with_their_recordings(tmp_path):
    dm = SignDataModule(BlobSource(), batch_size=8, cache_dir=str(tmp_path))
    x_train, _ = dm.tensors("train")
    # a "teacher" whose logits encode the recording itself, so a mismatch would show
    logits = x_train[:, :2, 0].clone()
    dm.set_teacher_logits(logits)
    for x, _, t in dm.train_dataloader():
        assert torch.equal(t, x[:, :2, 0])


def test_training_never_sees_a_batch_of_one(tmp_path):
    """56 training recordings in batches of 5 would leave one: BatchNorm refuses that batch."""
    dm = SignDataModule(BlobSource(), batch_size=5, cache_dir=str(tmp_path))
    x_train, _ = dm.tensors("train")
    assert len(x_train) % 5 == 1
    dm.set_teacher_logits(x_train[:, :2, 0].clone())
    model = ConvPoolLSTM(
        Architecture(
            in_channels=5,
            n_classes=4,
            conv_channels=(4, 4),
            hidden_sizes=(8,),
            kernel_size=3,
            pool=2,
            dropout=0.0,
            conv_batchnorm=True,
        )
    ).train()
    loader = dm.train_dataloader()
    sizes = []
    for x, _, t in loader:
        assert torch.equal(t, x[:, :2, 0])  # the folded recording keeps its teacher logits
        model(x)  # raised "Expected more than 1 value per channel" on the batch of one
        sizes.append(len(x))
    assert sizes == [5] * 10 + [6] and len(loader) == len(sizes)
    assert [len(y) for _, y in dm.val_dataloader()] == [len(dm.split.val)]  # evaluation as before


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"batch_size": 1}, "data.batch_size=1: must be >= 2"),
        ({"split": "random"}, "data.split='random': expected one of"),
        ({"fold": 5}, "data.fold=5: must be in 0..4"),
        ({"val_fraction": 1.5}, "data.val_fraction=1.5: must be in (0, 1)"),
        ({"split": "predefined"}, "data.split=predefined: data.source (Unloadable) has no"),
    ],
)
def test_bad_settings_are_refused_when_constructed(settings, message):
    with pytest.raises(DataError, match="^" + re.escape(message)):
        SignDataModule(Unloadable(), **settings)


class Unloadable:
    """A source that must not be loaded: constructing the DataModule does no I/O."""

    def load(self, cache_dir):
        raise AssertionError("loaded while only constructing")


@dataclass(frozen=True)
class PartitionedBlobs(BlobSource):
    """Blobs whose last quarter is a predefined test partition."""

    partitioned = True

    def load(self, cache_dir):
        rec = super().load(cache_dir)
        partition = np.where(np.arange(len(rec.y)) % 4 == 3, "test", "train")
        return dataclasses.replace(rec, partition=partition)


def test_predefined_partitions_are_served_and_pooled_only_when_asked(tmp_path, caplog):
    dm = SignDataModule(PartitionedBlobs(), split="predefined", cache_dir=str(tmp_path))
    x_test, _ = dm.tensors("test")
    assert torch.equal(x_test, torch.from_numpy(dm.recordings.x[3::4]))
    pooled = SignDataModule(PartitionedBlobs(), split="stratified", cache_dir=str(tmp_path))
    pooled.prepare()
    assert "pools the source's predefined train/test partitions" in caplog.text
    assert len(pooled.split.test) == 16  # 20 % of 80, drawn anew
