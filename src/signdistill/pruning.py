"""Channel pruning: a genuinely smaller dense ConvPoolLSTM, not a mask.

Importance per prunable unit: conv channels by their BatchNorm |scale| (or the L1 norm of their
filters without ``conv_batchnorm``); the last LSTM's units by the |scale| of the BatchNorm after
it; earlier LSTM units, which have no BatchNorm, by the L2 norm of their outgoing weights (the
next LSTM's input columns). A removed channel whose scale is zero outputs a constant
(act(BatchNorm bias)); that constant is folded into the next layer's bias, so removing it changes
nothing.

Written by hand rather than with Torch-Pruning: its LSTM pruner asserts a single layer and indexes
the gate blocks wrongly, and the conv part is two layers whose removal must stay consistent with
the LSTM's input columns, so one small pruner keeps every index in one place.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from signdistill.models import ConvPoolLSTM
from signdistill.sparsity import scale_layers

CONV_ACTIVATIONS = {"conv1": torch.sigmoid, "conv2": torch.relu}


def importance(model: ConvPoolLSTM) -> dict[str, torch.Tensor]:
    """Importance of every prunable unit, by layer: conv1, conv2, lstm0, lstm1, ..."""
    scales = scale_layers(model)
    out: dict[str, torch.Tensor] = {}
    for name, index in (("conv1", 0), ("conv2", 4)):
        conv = model.features[index]
        out[name] = (
            scales[name].weight.abs() if name in scales else conv.weight.abs().sum(dim=(1, 2))
        ).detach()
    last = len(model.lstms) - 1
    for i in range(last):
        out[f"lstm{i}"] = model.lstms[i + 1].weight_ih_l0.norm(dim=0).detach()
    out[f"lstm{last}"] = model.norm.weight.abs().detach()
    return out


def select(
    scores: dict[str, torch.Tensor], amount: float, scope: str = "layer", floor: int = 1
) -> dict[str, torch.Tensor]:
    """Sorted indices of the units to keep in each layer.

    ``layer``: every layer loses ``amount`` of its units. ``global``: the ``amount`` least
    important units overall go, comparing importances normalized by each layer's maximum. Either
    way at least ``floor`` units stay in every layer.
    """
    if not 0 <= amount < 1:
        raise ValueError(f"prune.amount={amount}: must be in [0, 1)")
    if scope not in ("layer", "global"):
        raise ValueError(f"prune.scope={scope!r}: expected 'layer' or 'global'")
    if scope == "layer":
        counts = {k: len(v) - math.floor(amount * len(v)) for k, v in scores.items()}
    else:
        normed = {k: v / v.max().clamp_min(1e-12) for k, v in scores.items()}
        pooled = torch.cat(list(normed.values()))
        n_drop = math.floor(amount * len(pooled))
        cut = pooled.sort().values[n_drop - 1] if n_drop else -1.0
        counts = {k: int((v > cut).sum()) for k, v in normed.items()}
    return {
        k: v.argsort(descending=True)[: max(min(floor, len(v)), counts[k])].sort().values
        for k, v in scores.items()
    }


def prune(model: ConvPoolLSTM, amount: float, scope: str = "layer", floor: int = 1) -> ConvPoolLSTM:
    """A smaller copy of ``model`` without its least important conv channels and LSTM units."""
    return prune_to(model, select(importance(model), amount, scope, floor))


def prune_to(model: ConvPoolLSTM, keep: dict[str, torch.Tensor]) -> ConvPoolLSTM:
    """A copy of ``model`` keeping exactly the units ``keep`` lists, layer by layer."""
    model = model.eval()
    n = len(model.lstms)
    arch = dataclasses.replace(
        model.arch,
        conv_channels=(len(keep["conv1"]), len(keep["conv2"])),
        hidden_sizes=tuple(len(keep[f"lstm{i}"]) for i in range(n)),
    )
    new = ConvPoolLSTM(arch).eval()
    new.normalize.load_state_dict(model.normalize.state_dict())
    with torch.no_grad():
        previous = None  # kept input columns of the next layer
        for name, conv_i in (("conv1", 0), ("conv2", 4)):
            k = keep[name]
            conv, target = model.features[conv_i], new.features[conv_i]
            weight = conv.weight[k] if previous is None else conv.weight[k][:, previous]
            target.weight.copy_(weight)
            target.bias.copy_((conv.bias + _folded_conv_input(model, conv_i, previous))[k])
            if isinstance(model.features[conv_i + 1], nn.BatchNorm1d):
                _copy_bn(model.features[conv_i + 1], new.features[conv_i + 1], k)
            previous = k
        for i in range(n):
            k = keep[f"lstm{i}"]
            shift = _folded_lstm_input(model, i, previous)
            _copy_lstm(model.lstms[i], new.lstms[i], k, previous, shift)
            previous = k
        _copy_bn(model.norm, new.norm, previous)
        new.head.weight.copy_(model.head.weight[:, previous])
        new.head.bias.copy_(model.head.bias + _folded_head_input(model, previous))
    return new


def _removed(size: int, kept: torch.Tensor | None) -> torch.Tensor:
    mask = torch.ones(size, dtype=torch.bool)
    if kept is not None:
        mask[kept] = False
    return mask


def _constant_outputs(model: ConvPoolLSTM, name: str) -> torch.Tensor | None:
    """What each channel of a conv stage outputs when its BN scale is zero: act(BN bias)."""
    bn = scale_layers(model).get(name)
    if bn is None:
        return None
    return CONV_ACTIVATIONS[name](bn.bias) * (bn.weight == 0)


def _folded_conv_input(
    model: ConvPoolLSTM, conv_i: int, kept_in: torch.Tensor | None
) -> torch.Tensor:
    """conv2's bias shift from conv1 channels removed while outputting a constant."""
    conv = model.features[conv_i]
    if kept_in is None:
        return torch.zeros(conv.out_channels)
    constant = _constant_outputs(model, "conv1")
    if constant is None:
        return torch.zeros(conv.out_channels)
    gone = _removed(conv.in_channels, kept_in)
    return (conv.weight[:, gone].sum(dim=2) * constant[gone]).sum(dim=1)


def _folded_lstm_input(model: ConvPoolLSTM, i: int, kept_in: torch.Tensor) -> torch.Tensor:
    """The first LSTM's input-bias shift from removed constant conv2 channels."""
    lstm = model.lstms[i]
    constant = _constant_outputs(model, "conv2") if i == 0 else None
    if constant is None:
        return torch.zeros(lstm.weight_ih_l0.shape[0])
    gone = _removed(lstm.input_size, kept_in)
    return lstm.weight_ih_l0[:, gone] @ constant[gone]


def _folded_head_input(model: ConvPoolLSTM, kept: torch.Tensor) -> torch.Tensor:
    """The head's bias shift from removed last-LSTM units whose BN scale is zero (output = bias)."""
    gone = _removed(model.norm.num_features, kept) & (model.norm.weight == 0)
    return model.head.weight[:, gone] @ model.norm.bias[gone]


def _copy_bn(src: nn.BatchNorm1d, dst: nn.BatchNorm1d, k: torch.Tensor) -> None:
    for attr in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, attr).copy_(getattr(src, attr)[k])


def _copy_lstm(
    src: nn.LSTM, dst: nn.LSTM, k: torch.Tensor, kept_in: torch.Tensor, shift: torch.Tensor
) -> None:
    """Keep units ``k`` in all four gate blocks (i, f, g, o) and the input columns ``kept_in``."""
    hidden = src.hidden_size
    rows = torch.cat([k + g * hidden for g in range(4)])
    dst.weight_ih_l0.copy_(src.weight_ih_l0[rows][:, kept_in])
    dst.weight_hh_l0.copy_(src.weight_hh_l0[rows][:, k])
    dst.bias_ih_l0.copy_(src.bias_ih_l0[rows] + shift[rows])
    dst.bias_hh_l0.copy_(src.bias_hh_l0[rows])
