"""Fitting and evaluating: Lightning's fit with the recipe's weights restored, then val and test.

The Trainer is ``conf/trainer``'s factory (``accelerator: auto``: a GPU when there is one). With
``deterministic: true`` Lightning makes torch use deterministic algorithms and, for CUDA, sets
``CUBLAS_WORKSPACE_CONFIG=:4096:8`` when the Trainer is built, before any cuBLAS call, which
deterministic LSTMs on CUDA need. The device each run trained on is its ``device`` tag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import Logger, MLFlowLogger
from torch import nn

from signdistill import console
from signdistill.data.datamodule import SignDataModule
from signdistill.module import Schedule, SignClassifier


def fit(
    module: SignClassifier,
    dm: SignDataModule,
    make_trainer: Callable[..., L.Trainer],
    folder: Path,
    logger: Logger,
    plan: console.Plan | None = None,
    kind: str = "model",
) -> Fitted:
    """Train ``module`` for its recipe's schedule on this data, then load the weights its recipe
    keeps (best by val_acc, or the last ones); returns what was trained. ``plan`` and ``kind``:
    the run's models and which one this is, for the progress bar's time left."""
    schedule = module.schedule(len(dm.train_dataloader()), dm.batch_size)
    checkpoint = ModelCheckpoint(
        dirpath=folder,
        filename="best",
        monitor="val_acc",
        mode="max",
        save_weights_only=True,
        save_last=module.restore == "last",
    )
    callbacks: list[Callback] = [checkpoint]
    if progress_bar(make_trainer):
        callbacks.append(console.RunProgressBar(plan, kind))
    with console.quiet_lightning():
        trainer = make_trainer(
            max_epochs=schedule.epochs,
            check_val_every_n_epoch=schedule.val_every,
            callbacks=callbacks,
            logger=logger,
            default_root_dir=folder,
        )
        if isinstance(logger, MLFlowLogger):
            logger.experiment.set_tag(logger.run_id, "device", device(trainer))
            logger.experiment.set_tag(logger.run_id, "threads", torch.get_num_threads())
        trainer.fit(module, datamodule=dm)
    if trainer.interrupted:
        raise KeyboardInterrupt("training interrupted")
    kept = checkpoint.last_model_path if module.restore == "last" else checkpoint.best_model_path
    module.load_state_dict(torch.load(kept, map_location="cpu", weights_only=True)["state_dict"])
    lr = trainer.optimizers[0].param_groups[0]["initial_lr" if module.scheduler_factory else "lr"]
    return Fitted(trainer.global_step, float(lr), schedule)


@dataclass(frozen=True)
class Fitted:
    """What a fit trained: its last optimizer step (fewer than planned if it stopped early), the
    learning rate it started at (the recipe's, scaled to the batch size), and the schedule it
    planned."""

    steps: int
    lr: float
    schedule: Schedule

    def params(self) -> dict[str, float]:
        """As the run logs them (``schedule.*``): what the recipe meant on this data."""
        return {
            "schedule.epochs": self.schedule.epochs,
            "schedule.steps": self.schedule.steps,
            "schedule.steps_per_epoch": self.schedule.steps_per_epoch,
            "schedule.val_every": self.schedule.val_every,
            "schedule.lr": self.lr,
        }


def device(trainer: L.Trainer) -> str:
    """The device ``trainer`` runs on, as torch names it (``cpu``, ``cuda:0``, ``mps:0``)."""
    return str(trainer.strategy.root_device)


def progress_bar(make_trainer: Callable[..., L.Trainer]) -> bool:
    """Whether ``conf/trainer`` asks for a progress bar (Lightning's default: yes)."""
    return getattr(make_trainer, "keywords", {}).get("enable_progress_bar", True)


def evaluate(
    module: SignClassifier, dm: SignDataModule, make_trainer: Callable[..., L.Trainer]
) -> dict:
    """Validation and test metrics of the module's current weights; how well it fits its own
    (clean) training recordings; the fraction of classes it predicts at all on the test set (a
    model that underfits may answer one class for everything)."""
    with console.quiet_lightning(console.LIGHTNING_DEVICES):  # fit already named the device
        trainer = make_trainer(enable_progress_bar=False, logger=False, enable_checkpointing=False)
        val = trainer.validate(module, datamodule=dm, verbose=False)[0]
        test = trainer.test(module, datamodule=dm, verbose=False)[0]
    predicted = module.test_confusion.compute().sum(dim=0) > 0  # columns: predicted classes
    return {
        "val_acc": val["val_acc"],
        "val_macro_f1": val["val_macro_f1"],
        "test_acc": test["test_acc"],
        "test_macro_f1": test["test_macro_f1"],
        "train_acc": accuracy(module.model.cpu(), *dm.tensors("train")),
        "test_predicted_classes": float(predicted.float().mean()),
    }


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of recordings ``model`` (in eval mode) classifies correctly."""
    return float((model.eval()(x).argmax(1) == y).float().mean())
