"""Sparsity training on per-channel scale factors (network slimming), with local attenuation.

Network slimming (Liu et al., 2017) adds an L1 penalty on the BatchNorm scales that follow each
prunable layer, applied as a subgradient after backward, so unimportant channels drift to zero
and can be removed. The scales here: the BatchNorms after both convs (needs
``model.conv_batchnorm``) and the BatchNorm after the last LSTM, whose entries scale its units.

Local sparse-rate attenuation (the hand-detection study's variant), as implemented here: in each
layer separately, the channels whose |scale| is in the top ``protect_fraction`` of that layer
(the layer's own quantile, recomputed at every step) are "channels that matter"; their penalty
is multiplied by a factor that decays linearly over training from 1 to ``min_factor``. The other
channels keep the full ``rate``. So the penalty keeps pushing weak channels to zero while it lets
go of the strong ones, which a uniform rate would keep shrinking. ``mode: uniform`` applies
``rate`` to every channel for the whole run (the comparison).
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from signdistill.models import ConvPoolLSTM


def scale_layers(model: ConvPoolLSTM) -> dict[str, nn.BatchNorm1d]:
    """The BatchNorms whose weights are the per-channel (or per-unit) importance scales."""
    layers = {f"lstm{len(model.lstms) - 1}": model.norm}
    for name, index in (("conv1", 1), ("conv2", 5)):
        if isinstance(model.features[index], nn.BatchNorm1d):
            layers[name] = model.features[index]
    return layers


def penalty_factors(
    gamma: torch.Tensor, progress: float, mode: str, protect_fraction: float, min_factor: float
) -> torch.Tensor:
    """Per-channel multiplier of the base rate at training ``progress`` in [0, 1]."""
    ones = torch.ones_like(gamma)
    if mode == "uniform" or protect_fraction <= 0:
        return ones
    threshold = torch.quantile(gamma.abs(), 1 - protect_fraction)
    decayed = 1 - (1 - min_factor) * min(max(progress, 0.0), 1.0)
    return torch.where(gamma.abs() >= threshold, ones * decayed, ones)


class SparsityRegularizer(Callback):
    """Adds ``rate * factor * sign(gamma)`` to each scale's gradient after backward."""

    def __init__(
        self,
        rate: float = 1e-4,
        mode: str = "local",
        protect_fraction: float = 0.5,
        min_factor: float = 0.1,
    ) -> None:
        if mode not in ("local", "uniform"):
            raise ValueError(f"prune.sparsity.mode={mode!r}: expected 'local' or 'uniform'")
        self.rate, self.mode = rate, mode
        self.protect_fraction, self.min_factor = protect_fraction, min_factor

    def on_after_backward(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        progress = trainer.current_epoch / max(1, (trainer.max_epochs or 1) - 1)
        with torch.no_grad():
            for bn in scale_layers(module.model).values():
                gamma = bn.weight
                if gamma.grad is None:
                    continue
                factors = penalty_factors(
                    gamma, progress, self.mode, self.protect_fraction, self.min_factor
                )
                gamma.grad.add_(self.rate * factors * torch.sign(gamma))


def sparsity_stats(model: ConvPoolLSTM, eps: float = 1e-2) -> dict[str, float]:
    """Fraction of scales with |gamma| < eps per layer (for logging)."""
    return {
        f"sparsity_{name}": float((bn.weight.abs() < eps).float().mean())
        for name, bn in scale_layers(model).items()
    }
