"""A small Conv-LSTM trained to high accuracy on synthetic recordings, for the export tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from signdistill.models import Architecture, ConvPoolLSTM


def fit_small_model(x: torch.Tensor, y: torch.Tensor, steps: int) -> ConvPoolLSTM:
    """A 4-channel, 3-class ConvPoolLSTM (8/8 conv, two LSTM(32)) fitted to ``x``, ``y`` by
    ``steps`` full-batch Adam steps from seed 0, in eval mode."""
    torch.manual_seed(0)
    model = ConvPoolLSTM(Architecture(4, 3, (8, 8), (32, 32)))
    model.normalize.fit(x.mean(dim=(0, 2)), x.std(dim=(0, 2)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()
