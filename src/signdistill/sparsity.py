"""Sparsity training that sparsifies: a proximal group step, with local sparse-rate attenuation.

Network slimming (Liu et al., 2017) penalizes the per-unit scale factors so unimportant units reach
zero and pruning can remove them (:mod:`signdistill.pruning`). Added to the gradient as an L1
subgradient, the penalty vanishes in AdamW's normalization: at any useful rate no scale reached
zero here. So the penalty is applied as its proximal step instead, after every optimizer step, to
each prunable unit's group of parameters (:meth:`ConvPoolLSTM.unit_groups`: a conv channel's
BatchNorm scale; an LSTM unit's outgoing and recurrent columns, so a removed unit changes nothing):

    g_u <- g_u * max(0, 1 - tau_u / ||g_u||)        (a group soft-threshold: exact zeros)
    tau_u = lr_t * rate * ramp(p) * sqrt(|g_u|) * factor_u(p)

with ``lr_t`` the learning rate the step used (scheduled), ``p`` the training progress (epoch /
(max_epochs - 1)), ``ramp`` rising from 0 to 1 over the first ``warmup`` of training (units die
one by one as the penalty grows; at full strength from the start a whole LSTM layer dies at once,
its units still alike), and ``sqrt(|g_u|)`` the group-lasso weight (a scalar scale and a 400-value
column feel a comparable pull against Adam's steps). Adam moves a weight by about ``lr_t`` per step
whatever its gradient, so a group stays at zero once ``rate * factor_u`` outweighs Adam's push.

**Local sparse-rate attenuation** (the hand-detection study's method, the default): in each layer
the units whose group norm is in the top ``protect_fraction`` are the ones that matter; their
factor falls from 1 to ``min_factor`` by ``decay_end`` of training (``schedule``: linear or cosine)
and the other units keep factor 1, so the penalty removes the weak while the strong go free.
``mode=uniform`` (the ablation) applies factor 1 to every unit throughout.

A unit is *below threshold* when its group norm is 0 or less than ``1e-3`` of its layer's largest:
the fraction of such units is logged every epoch (``sparsity_<layer>``, ``sparsity_all``), and
histograms of the group norms at the start and the end of training are logged as figures.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from pydantic import Field, NonNegativeFloat

from signdistill.models import ConvPoolLSTM, UnitSlice

Fraction = Annotated[float, Field(ge=0, le=1)]
RELATIVE_THRESHOLD = 1e-3


def decay(progress: float, min_factor: float, schedule: str = "linear") -> float:
    """The protected units' factor: 1 at ``progress`` 0, ``min_factor`` at 1."""
    p = min(max(progress, 0.0), 1.0)
    shape = p if schedule == "linear" else (1 - math.cos(math.pi * p)) / 2
    return 1 - (1 - min_factor) * shape


def penalty_factors(
    norms: torch.Tensor,
    progress: float,
    mode: str,
    protect_fraction: float,
    min_factor: float,
    schedule: str = "linear",
) -> torch.Tensor:
    """Per-unit multiplier of the rate for one layer's group ``norms``."""
    ones = torch.ones_like(norms)
    if mode == "uniform" or protect_fraction <= 0:
        return ones
    protected = norms >= torch.quantile(norms, 1 - protect_fraction)
    return torch.where(protected, ones * decay(progress, min_factor, schedule), ones)


def training_progress(trainer: L.Trainer) -> float:
    """``current_epoch / (max_epochs - 1)`` clamped to [0, 1]; 0 without a finite epoch budget."""
    max_epochs = trainer.max_epochs or 0
    if max_epochs <= 1:
        return 0.0
    return min(trainer.current_epoch / (max_epochs - 1), 1.0)


def group_norms(group: list[UnitSlice]) -> torch.Tensor:
    """Each unit's L2 norm over its whole group."""
    return torch.sqrt(sum(part.per_unit_squares() for part in group))


def below_threshold(model: ConvPoolLSTM) -> dict[str, torch.Tensor]:
    """Per prunable layer with groups, which units are below threshold (module docstring)."""
    masks = {}
    for name, group in model.unit_groups().items():
        norms = group_norms(group)
        masks[name] = (norms == 0) | (norms < RELATIVE_THRESHOLD * norms.max())
    return masks


def sparsity_stats(model: ConvPoolLSTM) -> dict[str, float]:
    """``sparsity_<layer>`` and ``sparsity_all``: the fraction of units below threshold."""
    masks = below_threshold(model)
    stats = {f"sparsity_{name}": float(mask.float().mean()) for name, mask in masks.items()}
    stats["sparsity_all"] = float(torch.cat(list(masks.values())).float().mean())
    return stats


class ProximalSparsity(Callback):
    """The proximal group step after every optimizer step (see the module docstring)."""

    def __init__(
        self,
        rate: NonNegativeFloat = 1.0,
        mode: Literal["local", "uniform"] = "local",
        protect_fraction: Fraction = 0.5,
        min_factor: Fraction = 0.02,
        decay_end: Annotated[float, Field(gt=0, le=1)] = 0.1,
        warmup: Fraction = 0.2,
        schedule: Literal["linear", "cosine"] = "linear",
    ) -> None:
        self.rate, self.mode, self.schedule = rate, mode, schedule
        self.protect_fraction, self.min_factor = protect_fraction, min_factor
        self.decay_end, self.warmup = decay_end, warmup
        self._lr: float | None = None  # the learning rate of the step just taken

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        _log_histograms(trainer, module.model, "start")

    def on_before_optimizer_step(
        self, trainer: L.Trainer, module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        # Read here: Lightning steps an epoch's scheduler before on_train_batch_end of the epoch's
        # last batch, which would see the next epoch's rate (0 after the very last step).
        self._lr = optimizer.param_groups[0]["lr"]

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args) -> None:
        if self._lr is not None:  # None: no optimizer step this batch (gradient accumulation)
            self.step(module.model, self._lr, training_progress(trainer))
            self._lr = None

    @torch.no_grad()
    def step(self, model: ConvPoolLSTM, lr: float, progress: float) -> None:
        """The group soft-threshold of every prunable unit, for a step at rate ``lr``."""
        ramp = min(1.0, progress / self.warmup) if self.warmup > 0 else 1.0
        for group in model.unit_groups().values():
            norms = group_norms(group)
            factors = penalty_factors(
                norms,
                min(1.0, progress / self.decay_end),
                self.mode,
                self.protect_fraction,
                self.min_factor,
                self.schedule,
            )
            weight = math.sqrt(sum(part.size() for part in group))
            tau = lr * self.rate * ramp * weight * factors
            shrink = torch.clamp(1 - tau / norms.clamp_min(1e-30), min=0.0)
            for part in group:
                part.scale_(shrink)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        module.log_dict(sparsity_stats(module.model))

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        _log_histograms(trainer, module.model, "end")


def _log_histograms(trainer: L.Trainer, model: ConvPoolLSTM, when: str) -> None:
    """Per-layer histograms of the group norms, an MLflow figure of the run (if it has one)."""
    logger = trainer.logger
    if logger is None or not hasattr(logger, "run_id"):
        return
    import matplotlib.pyplot as plt

    groups = model.unit_groups()
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 2.8), layout="constrained")
    for ax, (name, group) in zip(axes, groups.items(), strict=True):
        norms = group_norms(group).cpu().numpy()
        ax.hist(norms, bins=30, color="C0")
        ax.set_title(f"{name} ({len(norms)} units)")
        ax.set_xlabel("group norm")
    axes[0].set_ylabel("units")
    fig.suptitle(f"unit group norms at the {when} of sparsity training")
    logger.experiment.log_figure(logger.run_id, fig, f"sparsity/group_norms_{when}.png")
    plt.close(fig)
