"""Per-epoch cost of our Lightning training against a hand-written loop, and of distillation.

Every side trains one epoch per round, the sides interleaved round by round (see
``common.interleave``), and each ratio is the median of the per-round ratios with their range:
- framework overhead: a student epoch through SignClassifier (built from ``conf/train``) and the
  project's Trainer settings (``conf/trainer``) / the same epoch in a minimal PyTorch loop (same
  tensors, batch size, optimizer; no augmentation on either side); target <= 1.10;
- distillation overhead: a KD epoch with cached teacher logits / a scratch epoch (target <= 1.10),
  and with online teacher passes / scratch (what the cache saves);
- epochs/s and samples/s for teacher and student.

Validation, checkpoints and the MLflow logger are off on every side: only training is timed.

Usage: python benchmarks/training_overhead.py [repeats=8] [--only=plain,lightning] [overrides...]
(``--only`` times just those sides, e.g. the framework overhead alone, in shorter rounds.)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback

from signdistill import build
from signdistill.data.datamodule import SignDataModule
from signdistill.distill import Distiller, teacher_logits
from signdistill.models import ConvPoolLSTM, ModelSpec
from signdistill.module import SignClassifier
from signdistill.settings import Recipe, Settings, compose

from common import config, interleave, median_ms, ratio


class EpochTimer(Callback):
    """Wall time of the training epoch (validation is switched off in these measurements)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.start


def lightning_side(
    module: SignClassifier,
    dm: SignDataModule,
    make_trainer: Callable[..., L.Trainer],
    logits: torch.Tensor | None = None,
) -> Callable[[], float]:
    """One training epoch of ``module`` through a Trainer of the project's settings per call;
    ``logits``: the cached teacher logits the DataModule serves with each batch."""

    def epoch() -> float:
        timer = EpochTimer()
        trainer = make_trainer(
            max_epochs=1,
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            callbacks=[timer],
        )
        dm.set_teacher_logits(logits)
        trainer.fit(module, datamodule=dm)
        return timer.seconds

    return epoch


def plain_side(model: ConvPoolLSTM, dm: SignDataModule, recipe: Recipe) -> Callable[[], float]:
    """One epoch of the minimal loop per call: forward, cross-entropy, backward, step."""
    opt = instantiate(recipe.node.optimizer)(model.parameters())

    def epoch() -> float:
        dm.set_teacher_logits(None)
        model.train()
        start = time.perf_counter()
        for x, y in dm.train_dataloader():
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return time.perf_counter() - start

    return epoch


def sides(s: Settings, dm: SignDataModule) -> dict[str, Callable[[], float]]:
    """The epochs compared: the plain loop, the student from scratch, with cached teacher logits
    and with online teacher passes (a random teacher: only its cost matters), and the teacher."""
    torch.manual_seed(0)
    frozen = build.network(s.teacher.model, dm).eval()
    kd = s.loss()
    cached = teacher_logits(frozen, dm.tensors("train")[0])

    def lightning(
        recipe: Recipe,
        spec: ModelSpec,
        distiller: Distiller | None = None,
        logits: torch.Tensor | None = None,
    ) -> Callable[[], float]:
        module = recipe.module(build.network(spec, dm), None, distiller)  # no augmentation
        return lightning_side(module, dm, s.trainer, logits)

    return {
        "plain": plain_side(build.network(s.model, dm), dm, s.train),
        "lightning": lightning(s.train, s.model),
        "kd_cached": lightning(s.train, s.model, Distiller(frozen, kd, online=False), cached),
        "kd_online": lightning(s.train, s.model, Distiller(frozen, kd, online=True)),
        "teacher": lightning(s.teacher.train, s.teacher.model),
    }


RATIOS = {
    "framework overhead (Lightning / plain, target <= 1.10)": ("lightning", "plain"),
    "distillation overhead, cached logits / scratch (target <= 1.10)": ("kd_cached", "lightning"),
    "distillation overhead, online teacher / scratch": ("kd_online", "lightning"),
}


def main(repeats: int, only: list[str], overrides: list[str]) -> None:
    settings = compose(config("model=student", *overrides))
    dm = settings.data
    dm.prepare()
    n = len(dm.split.train)
    print(f"data={dm.name}: {n} training recordings, batch {dm.batch_size}")
    every = sides(settings, dm)
    times = interleave({k: v for k, v in every.items() if not only or k in only}, repeats)
    for side in times:
        print(f"{side} epoch: median {median_ms(times, side):.0f} ms")
    for label, (a, b) in RATIOS.items():
        if a in times and b in times:
            print(f"{label}: {ratio(times, a, b)}")
    for name, side in (("teacher", "teacher"), ("student", "lightning")):
        if side in times:
            sec = median_ms(times, side) / 1e3
            print(f"{name}: {1 / sec:.2f} epochs/s, {n / sec:,.0f} samples/s (training)")


if __name__ == "__main__":
    args = sys.argv[1:]
    n_repeats = int(args.pop(0)) if args and args[0].isdigit() else 8
    chosen = [a for a in args if a.startswith("--only=")]
    names = chosen[-1].removeprefix("--only=").split(",") if chosen else []
    main(n_repeats, names, [a for a in args if a not in chosen])
