"""The LightningModule that trains any network: how a model is trained (``conf/train/``).

A ``train`` config is this class's ``_target_``: optimizer, schedule, augmentation, how long to
train and which weights to keep are the recipe; the network and the distiller are given when it is
built.

How long: ``max_epochs``, with a floor and a ceiling in optimizer steps (``min_steps``,
``max_steps``), so that a recipe means about the same on 36 recordings as on 3,500: a small
dataset gets enough optimizer steps to fit (a few hundred epochs of one batch do not), a large one
no more than the recipe's budget. The learning rate is stated for batches of ``lr_batch_size``
recordings and scaled linearly with the data's batch size (Goyal et al., 2017). What a run
actually trained (epochs, steps, learning rate) is logged with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from pydantic import Field, NonNegativeInt, PositiveInt
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from signdistill.augment import Augment
from signdistill.distill import Distiller
from signdistill.models import ConvPoolLSTM

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
Batch = tuple[torch.Tensor, ...]


def bounded_epochs(
    max_epochs: int, min_steps: int, max_steps: int | None, steps_per_epoch: int
) -> int:
    """``max_epochs``, raised until ``min_steps`` optimizer steps are reached and lowered to stay
    within ``max_steps`` (never below one epoch)."""
    epochs = max(max_epochs, math.ceil(min_steps / steps_per_epoch))
    if max_steps is not None:
        epochs = min(epochs, max(1, max_steps // steps_per_epoch))
    return epochs


@dataclass(frozen=True)
class Schedule:
    """How long a recipe trains on given data: ``epochs`` of ``steps_per_epoch`` optimizer steps,
    at the recipe's learning rate times ``lr_scale``."""

    epochs: int
    steps_per_epoch: int
    lr_scale: float
    val_every: int = 1  # epochs between validations (and train_loss points); divides ``epochs``

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch


class SignClassifier(L.LightningModule):
    """Cross-entropy or KD training of ``model``; metrics: accuracy, macro-F1, confusion matrix.

    ``restore`` names the weights a run tests and stores: ``best`` by val_acc, or ``last`` (a
    fixed schedule trusts its full length more than a small validation set). ``scheduler``: a
    learning-rate schedule over the run's epochs, given ``T_max`` (the epochs) when it is built.
    ``max_epochs``, ``min_steps``, ``max_steps`` and ``lr_batch_size``: see the module docstring
    and :meth:`schedule`. ``callbacks`` are
    the recipe's own Lightning callbacks (early stopping, sparsity, a sweep's trial pruning); they
    act while fitting only.

    With a ``distiller``, a training batch is (x, y, teacher_logits) when the DataModule serves
    cached logits, or (x, y) with an online teacher run on the same (augmented) batch. The teacher
    is frozen and stays in eval mode whatever Lightning does to the module's mode.
    """

    def __init__(
        self,
        model: ConvPoolLSTM,
        optimizer: OptimizerFactory,
        max_epochs: PositiveInt,
        min_steps: NonNegativeInt = 0,
        max_steps: PositiveInt | None = None,
        lr_batch_size: PositiveInt | None = None,
        val_every_steps: PositiveInt = 1,
        restore: Literal["best", "last"] = "last",
        scheduler: SchedulerFactory | None = None,
        label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0,
        augment: Augment | None = None,
        callbacks: Mapping[str, Callback] | None = None,
        distiller: Distiller | None = None,
    ) -> None:
        super().__init__()
        if max_steps is not None and min_steps > max_steps:
            raise ValueError(f"min_steps={min_steps}: must be <= max_steps ({max_steps})")
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.max_epochs, self.min_steps, self.max_steps = max_epochs, min_steps, max_steps
        self.lr_batch_size, self.val_every_steps = lr_batch_size, val_every_steps
        self.lr_scale, self.val_every = 1.0, 1  # set by schedule() for the data it trains on
        self.restore = restore
        self.label_smoothing = label_smoothing
        self.augment = augment or Augment()
        self.recipe_callbacks = dict(callbacks or {})
        self.distill_loss = distiller.loss if distiller else None
        self.teacher = distiller.teacher if distiller and distiller.online else None
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
        self._loss_sum, self._loss_count = torch.zeros(()), 0  # this epoch's, for train_loss

    def schedule(self, steps_per_epoch: int, batch_size: int) -> Schedule:
        """How long and how fast this recipe trains on data of ``steps_per_epoch`` batches of
        ``batch_size``: ``max_epochs``, raised until ``min_steps`` are reached and lowered to stay
        within ``max_steps`` (never below one epoch); the learning rate scaled by ``batch_size /
        lr_batch_size``; validation every epoch, or on short epochs every ``val_every_steps``
        optimizer steps, the epochs rounded up so that the last one validates (and so keeps
        its weights: checkpoints are written at validation). Sets what the module trains with."""
        epochs = bounded_epochs(self.max_epochs, self.min_steps, self.max_steps, steps_per_epoch)
        self.val_every = max(1, self.val_every_steps // steps_per_epoch)
        epochs = self.val_every * math.ceil(epochs / self.val_every)
        self.lr_scale = batch_size / self.lr_batch_size if self.lr_batch_size else 1.0
        return Schedule(epochs, steps_per_epoch, self.lr_scale, self.val_every)

    def train(self, mode: bool = True) -> SignClassifier:
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_before_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Augment a training batch before Lightning moves it to the device: the augmentation
        runs on the CPU and draws from the CPU generator, so a seed gives the same batches on any
        accelerator. Returns (x, targets[, teacher_logits]); targets are class probabilities
        with mixup."""
        if not self.trainer.training:
            return batch
        x, targets = self.augment(batch[0], batch[1], self.model.arch.n_classes)
        return (x, targets, *batch[2:])

    def on_train_epoch_start(self) -> None:
        if self.current_epoch % self.val_every == 0:  # a new train_loss point begins
            self._loss_sum = torch.zeros((), device=self.device)
            self._loss_count = 0

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x, targets = batch[0], batch[1]
        logits = self.model(x)
        if self.distill_loss is None:
            loss = F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        else:
            teacher_logits = batch[2] if len(batch) > 2 else self._teacher_logits(x)
            loss = self.distill_loss(logits, teacher_logits, targets)
        # summed here and logged once per epoch: self.log on every step cost ~7 % of an epoch
        self._loss_sum += loss.detach() * len(x)
        self._loss_count += len(x)
        return loss

    def on_train_epoch_end(self) -> None:
        """``train_loss``: the mean loss per recording over the epochs since the last point (one
        epoch, as ``on_epoch`` logging gives, unless epochs are shorter than ``val_every_steps``:
        then one point per validation, not thousands of one-step points)."""
        if (self.current_epoch + 1) % self.val_every == 0:
            self.log("train_loss", self._loss_sum / self._loss_count)

    @torch.no_grad()
    def _teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.teacher is None:
            raise RuntimeError("distillation needs cached teacher logits or an online teacher")
        return self.teacher(x)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, y = batch
        logits = self.model(x)
        self.log("val_loss", F.cross_entropy(logits, y), batch_size=len(y))
        self.val_metrics.update(logits, y)
        self.log_dict(self.val_metrics, batch_size=len(y), prog_bar=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        x, y = batch
        logits = self.model(x)
        self.test_metrics.update(logits, y)
        self.test_confusion.update(logits, y)
        self.log_dict(self.test_metrics, batch_size=len(y))

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        opt = self.optimizer_factory(self.model.parameters())
        for group in opt.param_groups:
            group["lr"] *= self.lr_scale
        if self.scheduler_factory is None:
            return opt
        scheduler = self.scheduler_factory(opt, T_max=self.trainer.max_epochs)
        return {"optimizer": opt, "lr_scheduler": scheduler}

    def configure_callbacks(self) -> list[Callback]:
        """The recipe's callbacks while fitting; none for a separate validate or test run."""
        if self.trainer.state.fn != TrainerFn.FITTING:
            return []
        return list(self.recipe_callbacks.values())
