"""Sparsity training: the L1 subgradient touches only scale factors, attenuated where it matters."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from signdistill.models import Architecture, ConvPoolLSTM
from signdistill.sparsity import (
    SparsityRegularizer,
    decay,
    penalty_factors,
    sparsity_stats,
)

ARCH = Architecture(4, 3, (6, 6), (8, 8), conv_batchnorm=True)
SCALES = {"bn1.weight", "bn2.weight", "norm.weight"}


def _model() -> ConvPoolLSTM:
    """A model whose scales differ (fresh BatchNorms all start at 1, which protects nothing)."""
    torch.manual_seed(0)
    model = ConvPoolLSTM(ARCH)
    with torch.no_grad():
        for gamma in model.unit_scales().values():
            gamma.uniform_(-1.0, 1.0)
    return model


def _grads(
    regularizer: SparsityRegularizer | None, epoch: int = 0, accumulate: int = 1
) -> dict[str, torch.Tensor]:
    model = _model()
    x, y = torch.randn(5, 4, 60), torch.tensor([0, 1, 2, 0, 1])
    F.cross_entropy(model(x), y).backward()
    if regularizer is not None:
        trainer = SimpleNamespace(
            current_epoch=epoch, max_epochs=11, accumulate_grad_batches=accumulate
        )
        regularizer.on_after_backward(trainer, SimpleNamespace(model=model))
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def test_penalty_changes_only_scale_factor_gradients():
    plain = _grads(None)
    penalized = _grads(SparsityRegularizer(rate=0.01, mode="uniform"))
    signs = {name: torch.sign(p.detach()) for name, p in _model().named_parameters()}
    for name, grad in plain.items():
        if name in SCALES:
            assert torch.allclose(penalized[name] - grad, 0.01 * signs[name], atol=1e-7)
        else:
            assert torch.equal(penalized[name], grad), name


def test_rate_is_per_optimizer_step_under_gradient_accumulation():
    plain = _grads(None)
    halved = _grads(SparsityRegularizer(rate=0.01, mode="uniform"), accumulate=2)
    delta = halved["norm.weight"] - plain["norm.weight"]
    assert torch.allclose(delta.abs(), torch.full_like(delta, 0.005), atol=1e-7)


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


def test_cosine_schedule_decays_slower_early_and_ends_at_min_factor():
    assert decay(0.0, 0.1, "cosine") == 1.0 and decay(1.0, 0.1, "cosine") == pytest.approx(0.1)
    assert decay(0.25, 0.1, "cosine") > decay(0.25, 0.1, "linear")
    assert decay(0.5, 0.1, "cosine") == pytest.approx(0.55)


def test_local_mode_penalizes_protected_scales_less_than_uniform_late_in_training():
    plain = _grads(None)
    uniform = _grads(SparsityRegularizer(rate=0.01, mode="uniform"), epoch=10)
    local = _grads(SparsityRegularizer(rate=0.01, mode="local", min_factor=0.1), epoch=10)
    params = dict(_model().named_parameters())
    for name in SCALES:
        gamma = params[name].detach().abs()
        protected = gamma >= gamma.quantile(0.5)
        local_penalty = (local[name] - plain[name]).abs()
        uniform_penalty = (uniform[name] - plain[name]).abs()
        assert protected.any() and (~protected).any()
        assert torch.allclose(local_penalty[protected], torch.full_like(gamma, 1e-3)[protected])
        assert torch.allclose(uniform_penalty[protected], torch.full_like(gamma, 1e-2)[protected])
        assert torch.allclose(local_penalty[~protected], uniform_penalty[~protected])


class _Classifier(L.LightningModule):
    """The minimum the callback needs: a LightningModule holding a ConvPoolLSTM as ``model``."""

    def __init__(self, model: ConvPoolLSTM) -> None:
        super().__init__()
        self.model = model

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.model(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.model.parameters(), lr=0.05)


def _trained_scales(callbacks: list) -> torch.Tensor:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 4, 60), torch.arange(32) % 3)
    module = _Classifier(ConvPoolLSTM(ARCH))
    trainer = L.Trainer(
        max_epochs=3,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(data, batch_size=8))
    return torch.cat([g.detach().abs() for g in module.model.unit_scales().values()])


def test_regularizer_shrinks_scales_inside_a_lightning_trainer():
    plain = _trained_scales([])
    sparse = _trained_scales([SparsityRegularizer(rate=0.5, mode="uniform")])
    assert sparse.mean() < plain.mean() - 0.2  # 12 steps x lr 0.05 x rate 0.5 = 0.3 towards 0


def test_sparsity_stats_and_unit_scales():
    model = ConvPoolLSTM(ARCH)
    with torch.no_grad():
        model.bn1.weight[:3] = 0.0
        model.norm.weight[:2] = 1e-3
    assert sparsity_stats(model) == {
        "sparsity_conv1": 0.5,
        "sparsity_conv2": 0.0,
        "sparsity_lstm1": 0.25,
    }
    without = ConvPoolLSTM(Architecture(4, 3, (6, 6), (8, 8)))
    assert set(without.unit_scales()) == {"lstm1"}


@pytest.mark.parametrize(
    ("kwargs", "knob"),
    [
        ({"mode": "global"}, "mode"),
        ({"schedule": "step"}, "schedule"),
        ({"rate": -1.0}, "rate"),
        ({"protect_fraction": 1.5}, "protect_fraction"),
        ({"min_factor": -0.1}, "min_factor"),
    ],
)
def test_invalid_knobs_are_rejected(kwargs, knob):
    with pytest.raises(ValueError, match=rf"prune\.sparsity\.{knob}"):
        SparsityRegularizer(**kwargs)
