"""Sparsity training: the L1 subgradient touches only scale factors, attenuated where it matters."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from signdistill.models import Architecture, ConvPoolLSTM
from signdistill.sparsity import SparsityRegularizer, penalty_factors, scale_layers


def _grads(regularizer: SparsityRegularizer | None, epoch: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = ConvPoolLSTM(Architecture(4, 3, (6, 6), (8, 8), conv_batchnorm=True))
    x, y = torch.randn(5, 4, 60), torch.tensor([0, 1, 2, 0, 1])
    F.cross_entropy(model(x), y).backward()
    if regularizer is not None:
        trainer = SimpleNamespace(current_epoch=epoch, max_epochs=11)
        regularizer.on_after_backward(trainer, SimpleNamespace(model=model))
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def test_penalty_changes_only_scale_factor_gradients():
    plain = _grads(None)
    penalized = _grads(SparsityRegularizer(rate=0.01, mode="uniform"))
    scales = {"features.1.weight", "features.5.weight", "norm.weight"}
    for name, grad in plain.items():
        if name in scales:
            assert torch.allclose(penalized[name] - grad, 0.01 * torch.ones_like(grad), atol=1e-6)
        else:
            assert torch.equal(penalized[name], grad), name


def test_local_attenuation_spares_the_channels_that_matter():
    gamma = torch.tensor([0.05, 0.9, 0.1, 1.2, -0.8, 0.02])
    uniform = penalty_factors(gamma, 1.0, "uniform", 0.5, 0.1)
    start = penalty_factors(gamma, 0.0, "local", 0.5, 0.1)
    end = penalty_factors(gamma, 1.0, "local", 0.5, 0.1)
    assert uniform.tolist() == [1.0] * 6 and start.tolist() == [1.0] * 6
    protected = gamma.abs() >= gamma.abs().quantile(0.5)
    assert protected.tolist() == [False, True, False, True, True, False]
    assert end[protected].tolist() == pytest.approx([0.1] * 3)  # attenuated by the end
    assert end[~protected].tolist() == [1.0] * 3  # weak channels keep the full rate
    half = penalty_factors(gamma, 0.5, "local", 0.5, 0.1)
    assert half[protected].tolist() == pytest.approx([0.55] * 3)  # linear schedule


def test_local_mode_penalizes_protected_scales_less_than_uniform_late_in_training():
    uniform = _grads(SparsityRegularizer(rate=0.01, mode="uniform"), epoch=10)
    local = _grads(SparsityRegularizer(rate=0.01, mode="local"), epoch=10)
    assert (local["norm.weight"] - uniform["norm.weight"]).abs().sum() > 0
    assert ((uniform["norm.weight"] - local["norm.weight"]).abs() <= 0.01 + 1e-6).all()


def test_scale_layers_need_conv_batchnorm_for_conv_channels():
    without = ConvPoolLSTM(Architecture(4, 3, (6, 6), (8, 8)))
    assert set(scale_layers(without)) == {"lstm1"}
    with pytest.raises(ValueError, match=r"prune\.sparsity\.mode"):
        SparsityRegularizer(mode="global")
