"""The DataModule: in-memory batches, train-only statistics, cached teacher logits."""

from dataclasses import dataclass

import torch

from signdistill.data.datamodule import SignDataModule
from signdistill.data.recordings import Recordings

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
