"""Sparsity training: the proximal group step zeroes weak units exactly, spares protected ones, and
leaves units whose removal changes nothing; local attenuation against the uniform rate."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from signdistill.models import Architecture, ConvPoolLSTM
from signdistill.pruning import keep_above, prune_to
from signdistill.sparsity import (
    ProximalSparsity,
    below_threshold,
    decay,
    group_norms,
    penalty_factors,
    sparsity_stats,
)

ARCH = Architecture(4, 3, (6, 6), (8, 8), conv_batchnorm=True)


def _model(seed: int = 0) -> ConvPoolLSTM:
    """A model with non-trivial BatchNorm statistics and scales that differ."""
    torch.manual_seed(seed)
    model = ConvPoolLSTM(ARCH)
    with torch.no_grad():
        for bn in (model.bn1, model.bn2, model.norm):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _norms(model: ConvPoolLSTM) -> dict[str, torch.Tensor]:
    return {name: group_norms(group) for name, group in model.unit_groups().items()}


def test_the_step_zeroes_a_weak_unit_exactly_and_spares_a_protected_one():
    model = _model()
    with torch.no_grad():
        model.bn1.weight.copy_(torch.tensor([0.05, 1.0, 0.9, 0.08, 1.2, 0.07]))
    sparsity = ProximalSparsity(rate=1.0, mode="local", protect_fraction=0.5, min_factor=0.02)
    for _ in range(3):  # late in training: full rate, protection decayed to min_factor
        sparsity.step(model, lr=0.05, progress=1.0)
    gamma = model.bn1.weight.detach()
    assert gamma[[0, 3, 5]].tolist() == [0.0, 0.0, 0.0]  # exactly zero, not merely small
    assert gamma[[1, 2, 4]].tolist() == pytest.approx([1.0, 0.9, 1.2], abs=0.01)  # barely touched
    assert below_threshold(model)["conv1"].tolist() == [True, False, False, True, False, True]


def test_the_uniform_rate_shrinks_the_units_that_matter_too():
    local, uniform = _model(), _model()
    for model, mode in ((local, "local"), (uniform, "uniform")):
        ProximalSparsity(rate=1.0, mode=mode).step(model, lr=0.05, progress=1.0)
    protected = _norms(_model())["lstm0"] >= _norms(_model())["lstm0"].quantile(0.5)
    assert (_norms(uniform)["lstm0"][protected] < _norms(local)["lstm0"][protected]).all()


def test_the_rate_ramps_up_from_zero_over_the_warmup():
    before = _norms(_model())
    model = _model()
    ProximalSparsity(warmup=0.2).step(model, lr=0.05, progress=0.0)
    assert all(torch.equal(_norms(model)[k], v) for k, v in before.items())  # nothing yet


def test_pruning_the_zeroed_units_leaves_the_outputs_unchanged():
    model = _model()
    with torch.no_grad():  # weak units in every layer: one conv channel, lstm units' groups
        model.bn2.weight[[1, 4]] = 0.01
        for part in model.unit_groups()["lstm0"] + model.unit_groups()["lstm1"]:
            part.param[..., [2, 5]] *= 0.01
    sparsity = ProximalSparsity(rate=1.0, protect_fraction=0.5, min_factor=0.02)
    for _ in range(20):
        sparsity.step(model, lr=0.05, progress=1.0)
    below = below_threshold(model)
    assert below["conv2"][[1, 4]].all() and below["lstm0"][[2, 5]].all()
    assert below["lstm1"][[2, 5]].all()
    small = prune_to(model, keep_above(below))
    x = torch.randn(5, 4, 80)
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())


def test_the_step_uses_the_learning_rate_of_the_optimizer_step_it_follows():
    # Lightning steps an epoch's scheduler before on_train_batch_end of its last batch: the step
    # must use the rate the optimizer just used, not the next epoch's (0 after the last step)
    model = _model()
    sparsity = ProximalSparsity(rate=1.0, mode="uniform", warmup=0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    trainer = SimpleNamespace(current_epoch=9, max_epochs=10)
    sparsity.on_before_optimizer_step(trainer, None, optimizer)
    optimizer.param_groups[0]["lr"] = 0.0  # the scheduler's next value
    before = model.bn1.weight.detach().clone()
    sparsity.on_train_batch_end(trainer, SimpleNamespace(model=model))
    assert (model.bn1.weight.detach() < before).all()


def test_local_attenuation_spares_the_units_that_matter():
    norms = torch.tensor([0.05, 0.9, 0.1, 1.2, 0.8, 0.02])
    uniform = penalty_factors(norms, 1.0, "uniform", 0.5, 0.1)
    start = penalty_factors(norms, 0.0, "local", 0.5, 0.1)
    end = penalty_factors(norms, 1.0, "local", 0.5, 0.1)
    assert uniform.tolist() == [1.0] * 6 and start.tolist() == [1.0] * 6
    protected = norms >= norms.quantile(0.5)
    assert protected.tolist() == [False, True, False, True, True, False]
    assert end[protected].tolist() == pytest.approx([0.1] * 3)  # attenuated by the end
    assert end[~protected].tolist() == [1.0] * 3  # weak units keep the full rate
    half = penalty_factors(norms, 0.5, "local", 0.5, 0.1)
    assert half[protected].tolist() == pytest.approx([0.55] * 3)  # linear schedule


def test_cosine_schedule_decays_slower_early_and_ends_at_min_factor():
    assert decay(0.0, 0.1, "cosine") == 1.0 and decay(1.0, 0.1, "cosine") == pytest.approx(0.1)
    assert decay(0.25, 0.1, "cosine") > decay(0.25, 0.1, "linear")
    assert decay(0.5, 0.1, "cosine") == pytest.approx(0.55)


def test_sparsity_stats_count_units_below_a_thousandth_of_their_layers_largest():
    model = _model()
    with torch.no_grad():
        model.bn1.weight[:3] = 0.0
        model.bn2.weight[0] = 1e-5  # below 1e-3 of the largest (about 1)
        model.bn2.weight[1] = 1e-2  # not below
    stats = sparsity_stats(model)
    assert stats["sparsity_conv1"] == 0.5 and stats["sparsity_conv2"] == pytest.approx(1 / 6)
    assert stats["sparsity_all"] == pytest.approx(4 / (6 + 6 + 8 + 8))


class _Classifier(L.LightningModule):
    """The minimum the callback needs: a LightningModule holding a ConvPoolLSTM as ``model``."""

    def __init__(self, model: ConvPoolLSTM) -> None:
        super().__init__()
        self.model = model

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.model(x), y)

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=0.05)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=12)
        return {"optimizer": optimizer, "lr_scheduler": schedule}


def test_under_adamw_in_a_trainer_weak_units_reach_exactly_zero():
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 4, 60), torch.arange(32) % 3)
    module = _Classifier(ConvPoolLSTM(ARCH))
    trainer = L.Trainer(
        max_epochs=12,
        callbacks=[ProximalSparsity(rate=1.0, warmup=0.2, decay_end=0.1)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(data, batch_size=8))
    norms = _norms(module.model)
    assert (norms["lstm0"] == 0).any() and (norms["lstm1"] == 0).any()  # exact zeros
    below = torch.cat(list(below_threshold(module.model).values())).float().mean()
    assert below >= 0.25
    assert trainer.callback_metrics["sparsity_all"] == pytest.approx(float(below))
