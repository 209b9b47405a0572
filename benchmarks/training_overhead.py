"""Per-epoch cost of our Lightning training against a hand-written loop, and of distillation.

Prints, measured side by side in one run on the default data (or any `data=` override):
- framework overhead: a student epoch through SignClassifier + Trainer / the same epoch in a
  minimal PyTorch loop (same tensors, batch size, optimizer); target <= 1.25;
- distillation overhead: a KD epoch with cached teacher logits / a scratch epoch (target <= 1.10),
  and with online teacher passes / scratch (what the cache saves);
- epochs/s and samples/s for teacher and student.

Usage: python benchmarks/training_overhead.py [epochs=5] [hydra overrides...]
"""

from __future__ import annotations

import sys
import time

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback

from signdistill.distill import Distillation
from signdistill.models import ConvPoolLSTM
from signdistill.module import SignClassifier
from signdistill.pipeline import architecture, teacher_logits

from common import config, datamodule


class EpochTimer(Callback):
    """Wall time of each training epoch (validation is switched off in these measurements)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module) -> None:
        self.times.append(time.perf_counter() - self.start)


def lightning_epoch(module: SignClassifier, dm, epochs: int) -> float:
    """Median seconds per training epoch through the Trainer (first epoch dropped as warm-up)."""
    timer = EpochTimer()
    trainer = L.Trainer(
        max_epochs=epochs + 1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=dm)
    return sorted(timer.times[1:])[len(timer.times[1:]) // 2]


def plain_epoch(model: ConvPoolLSTM, dm, lr: float, epochs: int) -> float:
    """Median seconds per epoch of the minimal loop: forward, cross-entropy, backward, step."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    times = []
    model.train()
    for _ in range(epochs + 1):
        start = time.perf_counter()
        for x, y in dm.train_dataloader():
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def student_module(cfg, dm, distill=None, teacher=None) -> SignClassifier:
    torch.manual_seed(0)
    model = ConvPoolLSTM(architecture(cfg.model, dm))
    return SignClassifier(
        model,
        instantiate(cfg.model.optimizer),
        cfg.model.max_epochs,
        distill=distill,
        teacher=teacher,
    )


def main(epochs: int, overrides: list[str]) -> None:
    cfg = config("model=student", *overrides)
    dm = datamodule(cfg)
    n = len(dm.split.train)
    print(f"data={cfg.data.name}: {n} training recordings, batch {cfg.data.batch_size}")

    torch.manual_seed(0)
    plain = plain_epoch(ConvPoolLSTM(architecture(cfg.model, dm)), dm, 3e-3, epochs)
    lit = lightning_epoch(student_module(cfg, dm), dm, epochs)
    print(f"student epoch: Lightning {lit:.3f} s, plain loop {plain:.3f} s")
    print(f"framework overhead (Lightning / plain): {lit / plain:.2f}x (target <= 1.25)")

    teacher = ConvPoolLSTM(architecture(cfg.teacher, dm)).eval()
    kd = Distillation(temperature=4.0, alpha=0.5)
    dm.set_teacher_logits(teacher_logits(teacher, dm.tensors("train")[0]))
    cached = lightning_epoch(student_module(cfg, dm, kd), dm, epochs)
    dm.set_teacher_logits(None)
    online = lightning_epoch(student_module(cfg, dm, kd, teacher), dm, epochs)
    print(f"KD epoch: cached logits {cached:.3f} s, online teacher {online:.3f} s")
    print(f"distillation overhead, cached logits / scratch: {cached / lit:.2f}x (target <= 1.10)")
    print(f"distillation overhead, online teacher / scratch: {online / lit:.2f}x")

    teacher_module = SignClassifier(
        ConvPoolLSTM(architecture(cfg.teacher, dm)),
        instantiate(cfg.teacher.optimizer),
        cfg.teacher.max_epochs,
    )
    t_epoch = lightning_epoch(teacher_module, dm, epochs)
    for name, sec in (("teacher", t_epoch), ("student", lit)):
        print(f"{name}: {1 / sec:.2f} epochs/s, {n / sec:,.0f} samples/s (training)")


if __name__ == "__main__":
    args = sys.argv[1:]
    n_epochs = int(args.pop(0)) if args and args[0].isdigit() else 5
    main(n_epochs, args)
