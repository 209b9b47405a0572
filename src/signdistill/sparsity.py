"""Sparsity training on per-channel scale factors (network slimming), with local attenuation.

Network slimming (Liu et al., 2017) adds an L1 penalty on the BatchNorm scales that follow each
prunable layer, applied as a subgradient after backward, so unimportant channels drift to zero
and can be removed (:mod:`signdistill.pruning`). Which scale stands for which prunable unit:

- ``conv1`` / ``conv2`` channels: the weight of the BatchNorm right after that conv (only with
  ``Architecture.conv_batchnorm``; without it the convs have no scales and are not penalized).
- units of the last LSTM layer: the weight of the final ``norm`` BatchNorm, which scales each of
  them on its way to the head.
- units of earlier LSTM layers: no BatchNorm follows them, so they get no penalty; pruning ranks
  them by the L2 norm of their outgoing weights (the next LSTM's ``weight_ih`` columns).

Local sparse-rate attenuation (the hand-detection study's variant), exactly as implemented: at
every optimizer step, in each layer separately, the channels whose |scale| is at or above that
layer's ``1 - protect_fraction`` quantile are "channels that matter". Their subgradient is
``rate * decay(progress) * sign(scale)``, where ``progress = epoch / (max_epochs - 1)`` goes from
0 to 1 and ``decay`` falls from 1 to ``min_factor`` (``schedule``: ``linear``, or ``cosine``,
which stays near 1 longer and flattens near ``min_factor``). The other channels keep
``rate * sign(scale)``. So the penalty keeps pushing weak channels to zero while it lets go of
the strong ones, which a uniform rate would keep shrinking. ``mode="uniform"`` applies ``rate``
to every channel for the whole run (the comparison).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from pydantic import Field, NonNegativeFloat

from signdistill.models import ConvPoolLSTM

Fraction = Annotated[float, Field(ge=0, le=1)]

MODES = ("local", "uniform")
SCHEDULES = ("linear", "cosine")


def decay(progress: float, min_factor: float, schedule: str = "linear") -> float:
    """The protected channels' rate multiplier: 1 at ``progress`` 0, ``min_factor`` at 1."""
    p = min(max(progress, 0.0), 1.0)
    shape = p if schedule == "linear" else (1 - math.cos(math.pi * p)) / 2
    return 1 - (1 - min_factor) * shape


def penalty_factors(
    gamma: torch.Tensor,
    progress: float,
    mode: str,
    protect_fraction: float,
    min_factor: float,
    schedule: str = "linear",
) -> torch.Tensor:
    """Per-channel multiplier of the base rate for one layer's scales ``gamma``."""
    ones = torch.ones_like(gamma)
    if mode == "uniform" or protect_fraction <= 0:
        return ones
    threshold = torch.quantile(gamma.abs(), 1 - protect_fraction)
    protected = gamma.abs() >= threshold
    return torch.where(protected, ones * decay(progress, min_factor, schedule), ones)


def training_progress(trainer: L.Trainer) -> float:
    """``current_epoch / (max_epochs - 1)`` clamped to [0, 1]; 0 without a finite epoch budget."""
    max_epochs = trainer.max_epochs or 0
    if max_epochs <= 1:
        return 0.0
    return min(trainer.current_epoch / (max_epochs - 1), 1.0)


class SparsityRegularizer(Callback):
    """Adds ``rate * factor * sign(gamma)`` to each scale's gradient after backward.

    ``factor`` comes from :func:`penalty_factors` (see the module docstring for the rule). With
    gradient accumulation the rate is split over the accumulated backward passes, so ``rate`` is
    the penalty per optimizer step whatever ``accumulate_grad_batches`` is.
    """

    def __init__(
        self,
        rate: NonNegativeFloat = 1e-4,
        mode: Literal["local", "uniform"] = "local",
        protect_fraction: Fraction = 0.5,
        min_factor: Fraction = 0.1,
        schedule: Literal["linear", "cosine"] = "linear",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"prune.sparsity.mode={mode!r}: expected one of {MODES}")
        if schedule not in SCHEDULES:
            raise ValueError(f"prune.sparsity.schedule={schedule!r}: expected one of {SCHEDULES}")
        if rate < 0:
            raise ValueError(f"prune.sparsity.rate={rate}: must be >= 0")
        for knob, value in (("protect_fraction", protect_fraction), ("min_factor", min_factor)):
            if not 0 <= value <= 1:
                raise ValueError(f"prune.sparsity.{knob}={value}: must be in [0, 1]")
        self.rate, self.mode, self.schedule = rate, mode, schedule
        self.protect_fraction, self.min_factor = protect_fraction, min_factor

    def factors(self, gamma: torch.Tensor, progress: float) -> torch.Tensor:
        """This regularizer's :func:`penalty_factors` for one layer's scales."""
        return penalty_factors(
            gamma, progress, self.mode, self.protect_fraction, self.min_factor, self.schedule
        )

    def on_after_backward(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        progress = training_progress(trainer)
        rate = self.rate / trainer.accumulate_grad_batches
        with torch.no_grad():
            for gamma in module.model.unit_scales().values():
                if gamma.grad is None:
                    continue
                gamma.grad.add_(rate * self.factors(gamma, progress) * torch.sign(gamma))

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        module.log_dict(sparsity_stats(module.model))


def sparsity_stats(model: ConvPoolLSTM, eps: float = 1e-2) -> dict[str, float]:
    """``sparsity_<layer>``: the fraction of the layer's scales with |gamma| < eps (for logging)."""
    return {
        f"sparsity_{name}": float((gamma.abs() < eps).float().mean())
        for name, gamma in model.unit_scales().items()
    }
