"""On-batch augmentation of sensor recordings: random time shift, time scale, channel gain and
mixup of recordings (Zhang et al., 2018).

Mixup returns soft targets (the two labels weighted by the mixing coefficient), which
``F.cross_entropy`` takes as class probabilities, so one loss serves mixed and clean batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import NonNegativeFloat


@dataclass(frozen=True)
class Augment:
    """Magnitudes: shift and scale as fractions of the recording length, gain as a relative std,
    ``mixup`` as the Beta(a, a) concentration of the mixing coefficient (0: off)."""

    time_shift: NonNegativeFloat = 0.0
    time_scale: NonNegativeFloat = 0.0
    gain: NonNegativeFloat = 0.0
    mixup: NonNegativeFloat = 0.0

    @property
    def enabled(self) -> bool:
        return any(v > 0 for v in (self.time_shift, self.time_scale, self.gain, self.mixup))

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, n_classes: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A randomly augmented copy of ``x`` (N, C, T) and its targets.

        Targets are the labels ``y`` unchanged, or class probabilities (N, n_classes) with mixup.
        """
        return self._mix(self.warp(x), y, n_classes)

    def warp(self, x: torch.Tensor) -> torch.Tensor:
        """Time shift/scale (edges padded with the border value) and channel gain of ``x``."""
        n, c, t = x.shape
        if self.time_shift > 0 or self.time_scale > 0:
            scale = 1 + self.time_scale * (2 * torch.rand(n, 1) - 1)
            shift = self.time_shift * 2 * (2 * torch.rand(n, 1) - 1)
            grid_t = torch.linspace(-1, 1, t).unsqueeze(0) * scale + shift
            grid = torch.stack([grid_t, torch.zeros_like(grid_t)], dim=-1).unsqueeze(1)
            x = F.grid_sample(
                x.unsqueeze(2), grid, mode="bilinear", padding_mode="border", align_corners=True
            ).squeeze(2)
        if self.gain > 0:
            x = x * (1 + self.gain * torch.randn(n, c, 1))
        return x

    def _mix(
        self, x: torch.Tensor, y: torch.Tensor, n_classes: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mixup <= 0:
            return x, y
        beta = torch.distributions.Beta(self.mixup, self.mixup)
        lam = beta.sample((len(x), 1))
        perm = torch.randperm(len(x))
        one_hot = F.one_hot(y, n_classes).to(x.dtype)
        mixed_x = lam.unsqueeze(-1) * x + (1 - lam.unsqueeze(-1)) * x[perm]
        return mixed_x, lam * one_hot + (1 - lam) * one_hot[perm]
