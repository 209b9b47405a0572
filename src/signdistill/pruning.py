"""Channel pruning: a genuinely smaller dense ConvPoolLSTM, not a mask.

Prunable layers, in order: ``conv1``, ``conv2`` (output channels) and ``lstm0 .. lstm{n-1}``
(hidden units). Importance of a unit (:func:`importance`):

- conv channels: the |scale| of the BatchNorm after the conv, or without ``conv_batchnorm`` the
  L1 norm of the channel's filter;
- LSTM units: the L2 norm of the unit's group (:meth:`ConvPoolLSTM.unit_groups`: its recurrent
  column and, onward, the next layer's input column or, for the last layer, its ``norm`` scale),
  the measure sparsity training drives to zero (:mod:`signdistill.sparsity`).

``amount`` is the fraction of prunable units removed (not of parameters): with
``scope="layer"`` each layer loses ``floor(amount * size)`` units; with ``scope="global"``
importances are divided by their layer's maximum (the layers' measures differ in kind and scale)
and the ``floor(amount * total)`` lowest go wherever they are. ``floor`` then puts back the best
removed units of any layer left with fewer than ``floor`` units (an int: a count; a float in
(0, 1): a fraction of the layer's size), and never fewer than one unit stays.

Removing a unit that outputs a constant changes nothing once the constant is folded into the next
layer's bias; in eval mode that is the case for a conv channel whose BatchNorm scale is zero (it
outputs ``act(beta)``, e.g. sigmoid(0) = 0.5 for conv1, not 0) or whose filter is all zero
(``act(BN(bias))``), and for a last-LSTM unit whose ``norm`` scale is zero (it outputs ``beta``).
Every removed unit behind a BatchNorm is folded as that constant, exact or not (for a unit that is
not constant it is its output at the mean pre-activation: closer than dropping it).
Average pooling keeps a constant constant, so a conv1 constant ``v`` adds ``v * sum_k w[o, c, k]``
to conv2's bias, a conv2 constant adds ``weight_ih[:, c] * v`` to the first LSTM's input bias, and
a last-LSTM constant adds ``head.weight[:, u] * v`` to the head's bias. (An LSTM unit with no input
weights is not constant: its state still evolves over time, so it is not folded.)

Written by hand rather than with Torch-Pruning: its LSTM pruner asserts a single layer and indexes
the gate blocks wrongly, and the conv part's removals (with the constant folding above) must stay
consistent with the first LSTM's input columns, so one small pruner keeps every index in one
place; the conv part alone is two layers, too little to be worth a second dependency.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from signdistill.models import ConvPoolLSTM, ConvStage
from signdistill.sparsity import group_norms


def importance(model: ConvPoolLSTM) -> dict[str, torch.Tensor]:
    """Importance of every prunable unit, by layer (see the module docstring)."""
    groups = model.unit_groups()
    filters = {s.name: s.conv.weight.abs().sum(dim=(1, 2)) for s in model.conv_stages()}
    return {
        name: (group_norms(groups[name]) if name in groups else filters[name]).detach().clone()
        for name in model.prunable_layers()
    }


def min_units(floor: int | float, size: int) -> int:
    """How many units ``floor`` keeps in a layer of ``size``: a count, or a fraction if < 1."""
    wanted = math.ceil(floor * size) if 0 < floor < 1 else int(floor)
    return max(1, min(size, wanted))


def select(
    scores: dict[str, torch.Tensor],
    amount: float,
    scope: str = "layer",
    floor: int | float = 1,
) -> dict[str, torch.Tensor]:
    """Sorted indices of the units to keep in each layer (rule in the module docstring)."""
    if not 0 <= amount < 1:
        raise ValueError(f"prune.amount={amount}: must be in [0, 1)")
    if scope not in ("layer", "global"):
        raise ValueError(f"prune.scope={scope!r}: expected 'layer' or 'global'")
    if floor < 0:
        raise ValueError(f"prune.floor={floor}: must be >= 0")
    if scope == "layer":
        dropped = {k: math.floor(amount * len(v)) for k, v in scores.items()}
    else:
        normed = [v / v.max().clamp_min(1e-12) for v in scores.values()]
        layer_of = torch.cat([torch.full((len(v),), i) for i, v in enumerate(normed)])
        order = torch.cat(normed).argsort(stable=True)
        lowest = layer_of[order[: math.floor(amount * len(layer_of))]]
        dropped = {k: int((lowest == i).sum()) for i, k in enumerate(scores)}
    keep = {}
    for name, score in scores.items():
        count = max(len(score) - dropped[name], min_units(floor, len(score)))
        keep[name] = score.argsort(descending=True, stable=True)[:count].sort().values
    return keep


def keep_above(below: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The units to keep when exactly those ``below`` threshold go (at least one per layer)."""
    keep = {}
    for name, mask in below.items():
        kept = torch.nonzero(~mask).flatten()
        keep[name] = kept if len(kept) else torch.tensor([0])
    return keep


def prune(
    model: ConvPoolLSTM, amount: float, scope: str = "layer", floor: int | float = 1
) -> ConvPoolLSTM:
    """A smaller copy of ``model`` without its least important conv channels and LSTM units."""
    return prune_to(model, select(importance(model), amount, scope, floor))


def prune_to(model: ConvPoolLSTM, keep: dict[str, torch.Tensor]) -> ConvPoolLSTM:
    """A new dense model keeping exactly the units ``keep`` lists per layer (sorted indices).

    The source model is left untouched; the copy is in the source's train/eval mode and device.
    """
    n = len(model.lstms)
    arch = dataclasses.replace(
        model.arch,
        conv_channels=(len(keep["conv1"]), len(keep["conv2"])),
        hidden_sizes=tuple(len(keep[f"lstm{i}"]) for i in range(n)),
    )
    new = ConvPoolLSTM(arch).to(model.head.weight.device).train(model.training)
    new.normalize.load_state_dict(model.normalize.state_dict())
    with torch.no_grad():
        kept_in: torch.Tensor | None = None  # units kept in the previous layer
        constant: torch.Tensor | None = None  # what the previous layer's removed units become
        for src, dst in zip(model.conv_stages(), new.conv_stages(), strict=True):
            k = keep[src.name]
            weight, bias = src.conv.weight, src.conv.bias
            if kept_in is not None:
                bias = bias + _fold(weight.sum(dim=2), constant, kept_in)
                weight = weight[:, kept_in]
            dst.conv.weight.copy_(weight[k])
            dst.conv.bias.copy_(bias[k])
            if isinstance(src.bn, nn.BatchNorm1d):
                _copy_bn(src.bn, dst.bn, k)
            kept_in, constant = k, _removed_conv_outputs(src)
        for i, lstm in enumerate(model.lstms):
            k = keep[f"lstm{i}"]
            shift = _fold(lstm.weight_ih_l0, constant, kept_in)
            _copy_lstm(lstm, new.lstms[i], k, kept_in, shift)
            kept_in, constant = k, lstm.weight_ih_l0.new_zeros(lstm.hidden_size)
        _copy_bn(model.norm, new.norm, kept_in)
        # a removed last-LSTM unit reaches the head as beta: exactly, if its scale is zero
        new.head.weight.copy_(model.head.weight[:, kept_in])
        new.head.bias.copy_(model.head.bias + _fold(model.head.weight, model.norm.bias, kept_in))
    return new


def _removed_conv_outputs(stage: ConvStage) -> torch.Tensor:
    """Per channel of a conv stage: the constant it is replaced by if removed.

    Exact for a channel that outputs a constant (a zero filter, or a zero BatchNorm scale: then it
    outputs ``act(beta)``); for another channel behind a BatchNorm, ``act(beta)`` too, its output
    at the mean pre-activation (closer than dropping it); without a BatchNorm, 0 (dropped).
    """
    conv, bn = stage.conv, stage.bn
    zero_filter = (conv.weight == 0).all(dim=(1, 2))
    if not isinstance(bn, nn.BatchNorm1d):
        return torch.where(zero_filter, stage.activation(conv.bias), 0.0)
    bias_through_bn = (conv.bias - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
    constant = zero_filter & (bn.weight != 0)
    return stage.activation(torch.where(constant, bias_through_bn * bn.weight + bn.bias, bn.bias))


def _fold(weight: torch.Tensor, constant: torch.Tensor, kept_in: torch.Tensor) -> torch.Tensor:
    """Bias shift ``weight[:, removed] @ constant[removed]`` that replaces removed inputs."""
    removed = torch.ones(weight.shape[1], dtype=torch.bool, device=weight.device)
    removed[kept_in] = False
    return weight[:, removed] @ constant[removed]


def _copy_bn(src: nn.BatchNorm1d, dst: nn.BatchNorm1d, k: torch.Tensor) -> None:
    for attr in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, attr).copy_(getattr(src, attr)[k])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _copy_lstm(
    src: nn.LSTM, dst: nn.LSTM, k: torch.Tensor, kept_in: torch.Tensor, shift: torch.Tensor
) -> None:
    """Keep units ``k`` in all four gate blocks (rows ``g * hidden + k``, gates i, f, g, o), their
    recurrent columns, and the input columns ``kept_in``; ``shift`` is added to the input bias.
    """
    rows = torch.cat([k + g * src.hidden_size for g in range(4)])
    dst.weight_ih_l0.copy_(src.weight_ih_l0[rows][:, kept_in])
    dst.weight_hh_l0.copy_(src.weight_hh_l0[rows][:, k])
    dst.bias_ih_l0.copy_((src.bias_ih_l0 + shift)[rows])
    dst.bias_hh_l0.copy_(src.bias_hh_l0[rows])
