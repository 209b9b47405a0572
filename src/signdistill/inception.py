"""InceptionTime: the second teacher family.

Ismail Fawaz et al., "InceptionTime: Finding AlexNet for time series classification", Data Mining
and Knowledge Discovery 34 (2020), as in the authors' Keras code (github.com/hfawaz/InceptionTime,
``classifiers/inception.py``): ``depth`` inception modules, a residual shortcut every third
module, global average pooling over time and a linear layer to the classes.

One inception module (:class:`InceptionModule`)::

    x ─┬─ bottleneck 1x1 (skipped if x has <= 1 channel) ─┬─ conv k=40 ─┐
       │                                                  ├─ conv k=20 ─┤
       │                                                  └─ conv k=10 ─┼─ concat -> BN -> ReLU
       └─ MaxPool(3, stride 1, pad 1) ── conv 1x1 ──────────────────────┘

Every conv has ``filters`` outputs and no bias, so a module has ``(len(kernel_sizes) + 1) *
filters`` channels. The shortcut after modules 3, 6, ... is a 1x1 conv (no bias) and BatchNorm of
the block's input, added to the module's output, then ReLU; with a depth that is not a multiple of
3 the last modules have none (as in the reference).

Mapping to PyTorch: Keras' ``padding="same"`` pads an even kernel ``k`` by ``(k - 1) // 2`` steps
before and ``k // 2`` after. :class:`SameConv1d` pads ``k // 2`` on both sides and crops the first
output step, the same numbers as ``nn.Conv1d(padding="same")``. Measured on the default network
(18 channels, 400 steps; torch 2.13, onnxruntime 1.32): ``padding="same"`` exports as a ``Conv``
with ONNX's legacy ``auto_pad=SAME_UPPER`` (89 nodes, which the ONNX spec advises against and
small runtimes may lack) and warns about even kernels on first use; ``F.pad`` before an unpadded
conv exports each pad as ~10 shape-computing nodes (377 nodes, 13 kB more); pad-and-crop exports a
``Conv`` with explicit pads and a ``Slice`` (179 nodes, 4 kB more than auto_pad). All three give
the same logits and, within the shared machine's noise, the same batch-1 ONNX Runtime latency.
BatchNorm keeps PyTorch's defaults (momentum 0.1, eps 1e-5) like the Conv-LSTM family, not Keras'
(0.99, 1e-3).

The first layer is the same :class:`~signdistill.models.Standardize` as the Conv-LSTM family's,
so saved and exported models standardize their own raw input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from pydantic import NonNegativeInt, PositiveInt
from torch import nn

from signdistill.models import Standardize

RESIDUAL_EVERY = 3  # modules per residual block


def same_padding(kernel_size: int) -> tuple[int, int]:
    """Steps padded (before, after) so a stride-1 conv keeps the length, as Keras pads."""
    before = (kernel_size - 1) // 2
    return before, kernel_size - 1 - before


@dataclass(frozen=True)
class InceptionArchitecture:
    """Every size that determines an :class:`InceptionTime`; plain data for checkpoints.

    ``bottleneck``: channels of the 1x1 conv before the wide convs (0: none, as the reference's
    ``use_bottleneck=False``); it is skipped anyway where a module's input has <= 1 channel.
    """

    family: ClassVar[str] = "inception"

    in_channels: int
    n_classes: int
    depth: int = 6
    filters: int = 32
    bottleneck: int = 32
    kernel_sizes: tuple[int, ...] = (40, 20, 10)
    residual: bool = True

    def as_dict(self) -> dict[str, Any]:
        """Plain data, with the ``family`` key that tells :mod:`signdistill.families` the class."""
        return {**self.__dict__, "kernel_sizes": list(self.kernel_sizes), "family": self.family}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InceptionArchitecture:
        fields = {k: v for k, v in d.items() if k != "family"}
        if d.get("family", cls.family) != cls.family:
            raise ValueError(f"family={d['family']!r}: not an {cls.family} architecture")
        return cls(**{**fields, "kernel_sizes": tuple(d["kernel_sizes"])})

    @property
    def channels(self) -> int:
        """Channels out of every module: one ``filters`` block per kernel plus the pool branch."""
        return (len(self.kernel_sizes) + 1) * self.filters

    def shortcuts(self) -> int:
        """How many residual shortcuts the network has (one after every third module)."""
        return self.depth // RESIDUAL_EVERY if self.residual else 0

    def min_length(self) -> int:
        """Shortest input (time steps): every layer keeps the length and pooling is global."""
        return 1

    def receptive_span(self) -> tuple[int, int]:
        """How many input steps (before, after) one output step of the last module depends on.

        Per module: the widest of the convs' and the max-pool's reach on each side (1x1 convs,
        BatchNorm and the 1x1 shortcuts add nothing).
        """
        pads = [same_padding(k) for k in self.kernel_sizes] + [(1, 1)]  # the pool: 3 wide
        return (self.depth * max(p[0] for p in pads), self.depth * max(p[1] for p in pads))

    def receptive_field(self) -> int:
        """Width in time steps of the input window that one output step of the last module sees
        (away from the series' ends): 1 + 39 * depth for kernels up to 40."""
        before, after = self.receptive_span()
        return 1 + before + after


@dataclass(frozen=True)
class InceptionSpec:
    """An InceptionTime (``conf/model/inception.yaml``): its role and sizes.

    ``role`` and ``name`` as for :class:`~signdistill.models.ModelSpec`. ``depth`` modules of
    ``filters`` channels per branch, a ``bottleneck`` 1x1 conv (0: none), one conv branch per
    entry of ``kernel_sizes`` and a residual shortcut every third module if ``residual``.
    Channels and classes come from the data.
    """

    role: Literal["teacher", "student"]
    name: str = "inception"
    depth: PositiveInt = 6
    filters: PositiveInt = 32
    bottleneck: NonNegativeInt = 32
    kernel_sizes: tuple[PositiveInt, ...] = (40, 20, 10)
    residual: bool = True

    def __post_init__(self) -> None:
        # Hydra passes a list (a ListConfig); a tuple keeps the spec hashable and comparable
        object.__setattr__(self, "kernel_sizes", tuple(int(k) for k in self.kernel_sizes))
        if not self.kernel_sizes:
            raise ValueError("kernel_sizes=[]: needs at least one kernel size")

    def architecture(self, in_channels: int, n_classes: int) -> InceptionArchitecture:
        """The concrete sizes for data with ``in_channels`` channels and ``n_classes`` classes."""
        return InceptionArchitecture(
            in_channels=in_channels,
            n_classes=n_classes,
            depth=self.depth,
            filters=self.filters,
            bottleneck=self.bottleneck,
            kernel_sizes=self.kernel_sizes,
            residual=self.residual,
        )


class SameConv1d(nn.Conv1d):
    """A stride-1 conv without bias whose output is as long as its input, padded as Keras does
    (an even kernel reaches one step further after than before): padded ``k // 2`` on both
    sides, then the first output step, which reaches one step further before, is cropped."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        before, after = same_padding(kernel_size)
        super().__init__(in_channels, out_channels, kernel_size, padding=after, bias=False)
        self.crop = after - before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y[:, :, self.crop :] if self.crop else y


class InceptionModule(nn.Module):
    """Bottleneck -> parallel wide convs, and max-pool -> 1x1 conv; concat -> BN -> ReLU."""

    def __init__(
        self, in_channels: int, filters: int, bottleneck: int, kernel_sizes: tuple[int, ...]
    ) -> None:
        super().__init__()
        use_bottleneck = bottleneck > 0 and in_channels > 1
        self.bottleneck = (
            SameConv1d(in_channels, bottleneck, 1) if use_bottleneck else nn.Identity()
        )
        width = bottleneck if use_bottleneck else in_channels
        self.convs = nn.ModuleList(SameConv1d(width, filters, k) for k in kernel_sizes)
        self.pool = nn.MaxPool1d(3, stride=1, padding=1)
        self.pool_conv = SameConv1d(in_channels, filters, 1)
        self.bn = nn.BatchNorm1d((len(kernel_sizes) + 1) * filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bottleneck(x)
        branches = [conv(z) for conv in self.convs] + [self.pool_conv(self.pool(x))]
        return torch.relu(self.bn(torch.cat(branches, dim=1)))


class Shortcut(nn.Module):
    """The residual path: 1x1 conv (no bias) and BatchNorm of the block's input."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = SameConv1d(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class InceptionTime(nn.Module):
    """Standardize -> ``depth`` inception modules (residual every 3) -> global mean -> Linear."""

    def __init__(self, arch: InceptionArchitecture) -> None:
        super().__init__()
        self.arch = arch
        c = arch.channels
        self.normalize = Standardize(arch.in_channels)
        self.blocks = nn.ModuleList(
            InceptionModule(
                arch.in_channels if d == 0 else c, arch.filters, arch.bottleneck, arch.kernel_sizes
            )
            for d in range(arch.depth)
        )
        self.shortcuts = nn.ModuleList(
            Shortcut(arch.in_channels if i == 0 else c, c) for i in range(arch.shortcuts())
        )
        self.head = nn.Linear(c, arch.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last module's output (N, channels, T) for raw signals (N, C, T)."""
        x = self.normalize(x)
        block_input = x
        for d, module in enumerate(self.blocks):
            x = module(x)
            if (d + 1) % RESIDUAL_EVERY == 0 and d // RESIDUAL_EVERY < len(self.shortcuts):
                x = torch.relu(x + self.shortcuts[d // RESIDUAL_EVERY](block_input))
                block_input = x
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_classes) for raw (unstandardized) signals (N, C, T)."""
        return self.head(self.features(x).mean(dim=2))
