"""The Conv1D-pool-LSTM family shared by teacher and students.

Mapping of the source's Keras description to PyTorch: Conv1D -> AvgPool -> Conv1D -> AvgPool
produces a (time, features) map; the source's "flatten" before the LSTM cannot literally flatten
time away (an LSTM needs a sequence), so the pooled feature map is read as a sequence of T' steps
of ``conv2`` features (``x.transpose(1, 2)``); the LSTM's last step feeds BatchNorm -> Dropout ->
Linear.

The stacked LSTM is a list of single-layer LSTMs rather than one ``nn.LSTM(num_layers=2)`` so a
pruned model may keep a different number of hidden units in each layer; the parameter count and the
computation are identical to the stacked module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


class Standardize(nn.Module):
    """Per-channel standardization fit on the training split, stored in the model's state.

    Keeping the statistics as buffers means every checkpoint, ONNX file and MLflow model applies
    the same transform at prediction time as in training.
    """

    def __init__(self, n_channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, n_channels, 1))
        self.register_buffer("std", torch.ones(1, n_channels, 1))

    def fit(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set the statistics (per channel, shape (C,))."""
        self.mean.copy_(mean.reshape(self.mean.shape))
        self.std.copy_(std.reshape(self.std.shape).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@dataclass(frozen=True)
class Architecture:
    """Every size that determines a ConvPoolLSTM; plain data so it can be stored in checkpoints."""

    in_channels: int
    n_classes: int
    conv_channels: tuple[int, int] = (32, 64)
    hidden_sizes: tuple[int, ...] = (100, 100)
    kernel_size: int = 3
    pool: int = 3
    dropout: float = 0.2
    conv_batchnorm: bool = False

    def as_dict(self) -> dict:
        return {
            **self.__dict__,
            "conv_channels": list(self.conv_channels),
            "hidden_sizes": list(self.hidden_sizes),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Architecture:
        return cls(
            **{
                **d,
                "conv_channels": tuple(d["conv_channels"]),
                "hidden_sizes": tuple(d["hidden_sizes"]),
            }
        )

    def min_length(self) -> int:
        """Shortest input (time steps) that leaves at least one LSTM step."""
        k, p = self.kernel_size, self.pool
        return ((k - 1) + p) * p + (k - 1)


def scaled_sizes(base: Sequence[int], width: float) -> tuple[int, ...]:
    """Scale layer sizes by a width multiplier, never below one unit."""
    return tuple(max(1, round(width * b)) for b in base)


class ConvPoolLSTM(nn.Module):
    """Conv(c1, sigmoid) -> AvgPool -> Conv(c2, ReLU) -> AvgPool -> LSTMs -> BN -> Dropout -> FC.

    ``conv_batchnorm`` adds a BatchNorm after each conv, whose scales are the channel importances
    that sparsity training and channel pruning work on.
    """

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        c1, c2 = arch.conv_channels
        bn = nn.BatchNorm1d if arch.conv_batchnorm else (lambda _: nn.Identity())
        self.normalize = Standardize(arch.in_channels)
        self.features = nn.Sequential(
            nn.Conv1d(arch.in_channels, c1, arch.kernel_size),
            bn(c1),
            nn.Sigmoid(),
            nn.AvgPool1d(arch.pool),
            nn.Conv1d(c1, c2, arch.kernel_size),
            bn(c2),
            nn.ReLU(),
            nn.AvgPool1d(arch.pool),
        )
        sizes = [c2, *arch.hidden_sizes]
        self.lstms = nn.ModuleList(
            nn.LSTM(sizes[i], sizes[i + 1], batch_first=True) for i in range(len(arch.hidden_sizes))
        )
        self.norm = nn.BatchNorm1d(sizes[-1])
        self.dropout = nn.Dropout(arch.dropout)
        self.head = nn.Linear(sizes[-1], arch.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_classes) for raw (unstandardized) signals (N, C, T)."""
        seq = self.features(self.normalize(x)).transpose(1, 2)
        for lstm in self.lstms:
            seq, _ = lstm(seq)
        return self.head(self.dropout(self.norm(seq[:, -1])))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (buffers such as BatchNorm running stats are not counted)."""
    return sum(p.numel() for p in model.parameters())
