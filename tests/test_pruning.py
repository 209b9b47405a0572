"""Channel pruning: exactly the chosen units go, outputs survive removing constant units."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from signdistill.fit import accuracy
from signdistill.jobs import Trained
from signdistill.models import Architecture, ConvPoolLSTM, count_parameters
from signdistill.pruning import importance, min_units, prune, prune_to, select
from signdistill.recover import pruning_metrics

ARCH = Architecture(6, 5, (8, 12), (10, 9), conv_batchnorm=True)
SIZES = {"conv1": 8, "conv2": 12, "lstm0": 10, "lstm1": 9}


def _model(arch: Architecture = ARCH, seed: int = 0) -> ConvPoolLSTM:
    torch.manual_seed(seed)
    model = ConvPoolLSTM(arch)
    bns = [m for m in (model.norm, model.bn1, model.bn2) if isinstance(m, torch.nn.BatchNorm1d)]
    with torch.no_grad():  # non-trivial BatchNorm statistics and biases
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _bytes(model: torch.nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def _keep_all_but(dead: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {
        name: torch.tensor([i for i in range(size) if i not in dead.get(name, [])])
        for name, size in SIZES.items()
    }


def test_pruning_keeps_exactly_the_selected_units_and_their_weights():
    model = _model()
    keep = {
        "conv1": torch.tensor([0, 3, 5]),
        "conv2": torch.tensor([1, 2, 7, 11]),
        "lstm0": torch.tensor([0, 4, 9]),
        "lstm1": torch.tensor([2, 3, 5, 8]),
    }
    small = prune_to(model, keep)
    assert small.arch.conv_channels == (3, 4) and small.arch.hidden_sizes == (3, 4)
    assert small(torch.randn(2, 6, 80)).shape == (2, 5)
    assert torch.equal(small.conv1.weight, model.conv1.weight[keep["conv1"]])
    assert torch.equal(small.bn1.running_mean, model.bn1.running_mean[[0, 3, 5]])
    assert torch.equal(small.conv2.weight, model.conv2.weight[keep["conv2"]][:, keep["conv1"]])
    hidden = 10  # gate block g (i, f, g, o) of unit j lives at row j + g * hidden
    rows = torch.cat([keep["lstm0"] + g * hidden for g in range(4)])
    lstm0, small0 = model.lstms[0], small.lstms[0]
    assert torch.equal(small0.weight_ih_l0, lstm0.weight_ih_l0[rows][:, keep["conv2"]])
    assert torch.equal(small0.weight_hh_l0, lstm0.weight_hh_l0[rows][:, keep["lstm0"]])
    # every removed conv2 channel (behind a BatchNorm) reaches the LSTM as relu(beta): folded
    removed = torch.tensor([c for c in range(12) if c not in keep["conv2"]])
    shift = lstm0.weight_ih_l0[:, removed] @ torch.relu(model.bn2.bias[removed])
    assert torch.allclose(small0.bias_ih_l0, (lstm0.bias_ih_l0 + shift)[rows])
    assert torch.equal(small0.bias_hh_l0, lstm0.bias_hh_l0[rows])
    rows1 = torch.cat([keep["lstm1"] + g * 9 for g in range(4)])
    assert torch.equal(
        small.lstms[1].weight_ih_l0, model.lstms[1].weight_ih_l0[rows1][:, keep["lstm0"]]
    )
    assert torch.equal(small.norm.running_var, model.norm.running_var[keep["lstm1"]])
    assert torch.equal(small.head.weight, model.head.weight[:, keep["lstm1"]])
    assert torch.equal(small.normalize.std, model.normalize.std)
    assert count_parameters(small) < count_parameters(model)
    assert _bytes(small) < _bytes(model)


def test_removing_zero_scale_units_leaves_outputs_unchanged():
    model = _model()
    dead = {"conv1": [1, 6], "conv2": [0, 4, 9], "lstm0": [2, 5], "lstm1": [3, 7]}
    with torch.no_grad():
        for bn, units in (
            (model.bn1, dead["conv1"]),  # outputs sigmoid(beta), not 0: folded
            (model.bn2, dead["conv2"]),  # outputs relu(beta): folded into the LSTM
            (model.norm, dead["lstm1"]),  # outputs beta: folded into the head
        ):
            bn.weight[units] = 0.0
        model.lstms[1].weight_hh_l0[:, dead["lstm1"]] = 0.0  # and feed nothing back
        model.lstms[1].weight_ih_l0[:, dead["lstm0"]] = 0.0  # lstm0 units that feed nothing on
        model.lstms[0].weight_hh_l0[:, dead["lstm0"]] = 0.0
    x = torch.randn(4, 6, 90)
    small = prune_to(model, _keep_all_but(dead))
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5)


def test_removing_zero_filter_channels_without_batchnorm_folds_their_constant():
    model = _model(Architecture(6, 5, (8, 12), (10, 9)))
    dead = {"conv1": [0, 5], "conv2": [3, 10]}
    with torch.no_grad():
        model.conv1.weight[dead["conv1"]] = 0.0  # outputs sigmoid(bias)
        model.conv2.weight[dead["conv2"]] = 0.0  # outputs relu(bias)
        model.conv2.bias[dead["conv2"]] = torch.tensor([0.3, 0.7])
    x = torch.randn(3, 6, 70)
    small = prune_to(model, _keep_all_but(dead))
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5)


def test_source_model_is_untouched():
    model = _model().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small = prune(model, amount=0.5)
    assert model.training and small.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_layer_scope_removes_the_least_important_share_of_every_layer():
    scores = {"a": torch.tensor([0.1, 0.9, 0.5, 0.2]), "b": torch.tensor([3.0, 1.0])}
    keep = select(scores, amount=0.5, scope="layer")
    assert keep["a"].tolist() == [1, 2] and keep["b"].tolist() == [0]


def test_global_scope_compares_normalized_importance_and_keeps_a_floor():
    scores = {"a": torch.tensor([1.0, 0.95, 0.9, 0.85]), "b": torch.tensor([1.0, 0.01, 0.02])}
    keep = select(scores, amount=0.3, scope="global")
    assert keep["a"].tolist() == [0, 1, 2, 3] and keep["b"].tolist() == [0]
    floor = select(
        {"a": torch.tensor([1.0, 0.9]), "b": torch.tensor([1.0, 1e-6, 1e-6])},
        0.6,
        "global",
        floor=2,
    )
    assert len(floor["b"]) == 2  # no layer vanishes


def test_global_scope_removes_exactly_amount_even_with_ties():
    scores = {"a": torch.tensor([1.0, 0.0, 0.0, 0.0]), "b": torch.tensor([1.0, 0.0, 0.0, 0.5])}
    keep = select(scores, amount=0.25, scope="global")
    assert sum(len(k) for k in keep.values()) == 6  # 8 units, floor(0.25 * 8) = 2 removed


def test_floor_is_a_count_or_a_fraction_and_never_zero():
    counts = [min_units(2, 10), min_units(0.25, 10), min_units(0, 10), min_units(5, 3)]
    assert counts == [2, 3, 1, 3]
    keep = select({"a": torch.arange(1.0, 11.0)}, amount=0.9, scope="layer", floor=0.25)
    assert keep["a"].tolist() == [7, 8, 9]


def test_prune_uses_batchnorm_scales_and_shrinks_the_model():
    model = _model()
    with torch.no_grad():
        model.bn1.weight.copy_(torch.arange(1.0, 9.0))  # conv1 importance = 1..8
    small = prune(model, amount=0.5)
    assert small.arch.conv_channels == (4, 6) and small.arch.hidden_sizes == (5, 5)
    assert torch.equal(small.bn1.weight, torch.arange(5.0, 9.0))  # the 4 largest kept
    assert set(importance(model)) == set(SIZES)
    with pytest.raises(ValueError, match=r"prune\.amount"):
        prune(model, amount=1.0)


def test_global_prune_runs_and_importance_without_batchnorm_is_filter_l1():
    model = _model(Architecture(6, 5, (8, 12), (10, 9)))
    scores = importance(model)
    assert torch.allclose(scores["conv1"], model.conv1.weight.abs().sum(dim=(1, 2)))
    onward, recurrent = model.lstms[1].weight_ih_l0, model.lstms[0].weight_hh_l0
    group = (onward.pow(2).sum(0) + recurrent.pow(2).sum(0)).sqrt()  # the unit's whole group
    assert torch.allclose(scores["lstm0"], group)
    small = prune(model, amount=0.6, scope="global", floor=2)
    total = sum(SIZES.values())
    assert sum(small.arch.conv_channels) + sum(small.arch.hidden_sizes) <= total - int(0.6 * total)
    assert min(*small.arch.conv_channels, *small.arch.hidden_sizes) >= 2
    assert small(torch.randn(2, 6, 60)).shape == (2, 5)


def test_pruning_metrics_measure_the_model_pruned_of_exactly_its_zeroed_units():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 6, 40, generator=g)[torch.arange(100) % 5] + torch.randn(100, 6, 40)
    model = _model().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):  # a model whose predictions depend on its input
        optimizer.zero_grad()
        F.cross_entropy(model(x), torch.arange(100) % 5).backward()
        optimizer.step()
    model.eval()
    zeroed = {name: [0, 3] for name in SIZES}  # what sparsity training drove to exactly zero
    with torch.no_grad():
        for name, group in model.unit_groups().items():
            factors = torch.ones(SIZES[name])
            factors[zeroed[name]] = 0.0
            for part in group:
                part.scale_(factors)
    with torch.no_grad():
        y = model(x).argmax(1)  # labels the sparse model gets all right
    smaller = prune(model, 0.8, "layer", 1)
    metrics = pruning_metrics(Trained("base", model, {"test_acc": 1.0}), smaller, (x, y))
    # removing exactly the zeroed units changes no prediction; pruning 80 % of them does
    assert metrics["test_acc_pruned_below_threshold"] == 1.0
    assert metrics["test_acc_before_recovery"] == accuracy(smaller, x, y) < 0.9
    assert metrics["sparse_below_threshold"] == pytest.approx(2 * 4 / sum(SIZES.values()))
    assert metrics["sparse_test_acc"] == 1.0
