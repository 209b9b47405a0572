"""On-batch augmentation of sensor recordings: random time shift, time scale and channel gain."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """Magnitudes: shift and scale as fractions of the recording length, gain as a relative std."""

    time_shift: float = 0.0
    time_scale: float = 0.0
    gain: float = 0.0

    @property
    def enabled(self) -> bool:
        return any(v > 0 for v in (self.time_shift, self.time_scale, self.gain))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """A randomly warped copy of ``x`` (N, C, T); edges are padded with the border value."""
        if not self.enabled:
            return x
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
