"""The Conv1D-pool-LSTM family shared by teacher and students.

Mapping of the source's Keras description to PyTorch: Conv1D -> AvgPool -> Conv1D -> AvgPool
produces a (time, features) map; the source's "flatten" before the LSTM cannot literally flatten
time away (an LSTM needs a sequence), so the pooled feature map is read as a sequence of T' steps
of ``conv2`` features (``x.transpose(1, 2)``); the LSTM's last step feeds BatchNorm -> Dropout ->
Linear.

The stacked LSTM is a list of single-layer LSTMs rather than one ``nn.LSTM(num_layers=2)`` so a
pruned model may keep a different number of hidden units in each layer; the parameter count and the
computation are identical to the stacked module.

The model names its layers and says which units are prunable and which scale stands for each
(:meth:`ConvPoolLSTM.conv_stages`, :meth:`ConvPoolLSTM.unit_groups`), so pruning and sparsity
training never index into it by position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt
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


@dataclass(frozen=True)
class ModelSpec:
    """What a model is (``conf/model/``): its role in the study and its layer sizes.

    ``role``: a ``teacher`` is trained on its own and stored for students; a ``student`` learns
    from the teacher (unless ``distill=none``). ``name``: the config it comes from (``teacher``,
    ``student``, ``student_tiny``, ...), which names and tags its runs. ``width`` multiplies
    conv1, conv2 and hidden (rounded), for sweeps over one size knob; a width that would round a
    layer to 0 units is refused, rather than trained as a 1-unit layer the config did not ask for.
    Channels and classes come from the data.
    """

    role: Literal["teacher", "student"]
    name: str
    conv1: PositiveInt
    conv2: PositiveInt
    hidden: PositiveInt
    lstm_layers: PositiveInt = 2
    kernel_size: PositiveInt = 3
    pool: PositiveInt = 3
    dropout: NonNegativeFloat = 0.2
    conv_batchnorm: bool = False
    width: PositiveFloat = 1.0

    def __post_init__(self) -> None:
        if not self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}: must be in [0, 1)")
        sizes = {"conv1": self.conv1, "conv2": self.conv2, "hidden": self.hidden}
        lost = {
            key: self.width * size for key, size in sizes.items() if round(self.width * size) < 1
        }
        if lost:  # scaled_sizes would raise them to one unit: not the model asked for
            scaled = ", ".join(f"{key}={sizes[key]} to {units:.3g}" for key, units in lost.items())
            smallest = min(sizes.values())
            raise ValueError(
                f"width={self.width}: scales {scaled} units; every layer needs at least one "
                f"(width > {0.5 / smallest:.3g} for these sizes), or set the sizes themselves"
            )

    def architecture(self, in_channels: int, n_classes: int) -> Architecture:
        """The concrete sizes for data with ``in_channels`` channels and ``n_classes`` classes."""
        c1, c2, h = scaled_sizes((self.conv1, self.conv2, self.hidden), self.width)
        return Architecture(
            in_channels=in_channels,
            n_classes=n_classes,
            conv_channels=(c1, c2),
            hidden_sizes=(h,) * self.lstm_layers,
            kernel_size=self.kernel_size,
            pool=self.pool,
            dropout=self.dropout,
            conv_batchnorm=self.conv_batchnorm,
        )


@dataclass(frozen=True)
class UnitSlice:
    """One tensor holding a slice of every unit's group: a 1-D ``param`` holds one value per unit
    (a scale), a 2-D one a column per unit (the weights that carry the unit's output on)."""

    param: nn.Parameter

    def per_unit_squares(self) -> torch.Tensor:
        """Each unit's sum of squares in this slice."""
        p = self.param.detach()
        return p.pow(2) if p.dim() == 1 else p.pow(2).sum(dim=0)

    def size(self) -> int:
        """How many values one unit has in this slice."""
        return 1 if self.param.dim() == 1 else self.param.shape[0]

    def scale_(self, factors: torch.Tensor) -> None:
        """Multiply each unit's values by its factor, in place."""
        self.param.data.mul_(factors if self.param.dim() == 1 else factors.unsqueeze(0))


@dataclass(frozen=True)
class ConvStage:
    """One conv stage: the conv, its BatchNorm (Identity without ``conv_batchnorm``) and act."""

    name: str
    conv: nn.Conv1d
    bn: nn.Module
    activation: Callable[[torch.Tensor], torch.Tensor]


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
        self.conv1 = nn.Conv1d(arch.in_channels, c1, arch.kernel_size)
        self.bn1 = bn(c1)
        self.conv2 = nn.Conv1d(c1, c2, arch.kernel_size)
        self.bn2 = bn(c2)
        self.pool = nn.AvgPool1d(arch.pool)
        sizes = [c2, *arch.hidden_sizes]
        self.lstms = nn.ModuleList(
            nn.LSTM(sizes[i], sizes[i + 1], batch_first=True) for i in range(len(arch.hidden_sizes))
        )
        self.norm = nn.BatchNorm1d(sizes[-1])
        self.dropout = nn.Dropout(arch.dropout)
        self.head = nn.Linear(sizes[-1], arch.n_classes)

    def conv_stages(self) -> list[ConvStage]:
        """The two conv stages, in order, with their activations."""
        return [
            ConvStage("conv1", self.conv1, self.bn1, torch.sigmoid),
            ConvStage("conv2", self.conv2, self.bn2, torch.relu),
        ]

    def prunable_layers(self) -> list[str]:
        """Names of the layers whose units (channels, hidden units) pruning can remove."""
        return ["conv1", "conv2", *(f"lstm{i}" for i in range(len(self.lstms)))]

    def unit_groups(self) -> dict[str, list[UnitSlice]]:
        """Every prunable unit's group of parameters, by layer: when a unit's whole group is zero,
        removing the unit leaves the model's outputs unchanged (:mod:`signdistill.pruning`).

        A conv channel: the scale of the BatchNorm after its conv (only with ``conv_batchnorm``;
        a zero scale makes the channel a constant, which pruning folds into the next bias). An LSTM
        unit: the columns that carry its state on, its own recurrent column ``weight_hh[:, u]``
        (all four gates) and, for an earlier layer, the next layer's ``weight_ih[:, u]``; for the
        last layer the ``norm`` scale instead, on the way to the head.
        """
        groups = {
            stage.name: [UnitSlice(stage.bn.weight)]
            for stage in self.conv_stages()
            if isinstance(stage.bn, nn.BatchNorm1d)
        }
        last = len(self.lstms) - 1
        for i, lstm in enumerate(self.lstms):
            onward = self.lstms[i + 1].weight_ih_l0 if i < last else self.norm.weight
            groups[f"lstm{i}"] = [UnitSlice(onward), UnitSlice(lstm.weight_hh_l0)]
        return groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_classes) for raw (unstandardized) signals (N, C, T)."""
        x = self.normalize(x)
        for stage in self.conv_stages():
            x = self.pool(stage.activation(stage.bn(stage.conv(x))))
        seq = x.transpose(1, 2)
        for lstm in self.lstms:
            seq, _ = lstm(seq)
        return self.head(self.dropout(self.norm(seq[:, -1])))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (buffers such as BatchNorm running stats are not counted)."""
    return sum(p.numel() for p in model.parameters())
