"""The LightningModule that trains any ConvPoolLSTM, with or without a distillation teacher."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from signdistill.augment import Augment
from signdistill.distill import Distillation
from signdistill.models import ConvPoolLSTM


class SignClassifier(L.LightningModule):
    """Cross-entropy or KD training of ``model``; metrics: accuracy, macro-F1, confusion matrix.

    With ``distill`` set, a training batch is (x, y, teacher_logits) when the DataModule serves
    cached logits, or (x, y) with a ``teacher`` that is run on the same (augmented) batch. The
    teacher is frozen and stays in eval mode whatever Lightning does to the module's mode.
    """

    def __init__(
        self,
        model: ConvPoolLSTM,
        optimizer: Callable[..., torch.optim.Optimizer],
        max_epochs: int,
        cosine: bool = True,
        label_smoothing: float = 0.0,
        augment: Augment | None = None,
        distill: Distillation | None = None,
        teacher: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.max_epochs = max_epochs
        self.cosine = cosine
        self.label_smoothing = label_smoothing
        self.augment = augment or Augment()
        self.distill = distill
        self.teacher = teacher
        if teacher is not None:
            teacher.requires_grad_(False)
            teacher.eval()
        n = model.arch.n_classes
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(n, average="micro"),
                "macro_f1": MulticlassF1Score(n, average="macro"),
            }
        )
        self.val_metrics = metrics.clone(prefix="val_")
        self.test_metrics = metrics.clone(prefix="test_")
        self.test_confusion = MulticlassConfusionMatrix(n)

    def train(self, mode: bool = True) -> SignClassifier:
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x, targets = self.augment(batch[0], batch[1], self.model.arch.n_classes)
        logits = self.model(x)
        if self.distill is None:
            loss = F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        else:
            teacher_logits = batch[2] if len(batch) > 2 else self._teacher_logits(x)
            loss = self.distill(logits, teacher_logits, targets)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    @torch.no_grad()
    def _teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.teacher is None:
            raise RuntimeError("distillation needs cached teacher logits or a teacher module")
        return self.teacher(x)

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        x, y = batch
        logits = self.model(x)
        self.log("val_loss", F.cross_entropy(logits, y), batch_size=len(y))
        self.val_metrics.update(logits, y)
        self.log_dict(self.val_metrics, batch_size=len(y), prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        x, y = batch
        logits = self.model(x)
        self.test_metrics.update(logits, y)
        self.test_confusion.update(logits, y)
        self.log_dict(self.test_metrics, batch_size=len(y))

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        opt = self.optimizer_factory(self.model.parameters())
        if not self.cosine:
            return opt
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.max_epochs))
        return {"optimizer": opt, "lr_scheduler": sched}
