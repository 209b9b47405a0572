"""InceptionTime, the second teacher family: shapes, receptive field, stored standardization,
checkpoints of both families, ONNX export and that it trains."""

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from signdistill.checkpoints import ModelFileError, load_model, save_model
from signdistill.export import export_onnx, onnx_logits, quantize_int8, session
from signdistill.families import architecture_from_dict, build_network
from signdistill.inception import InceptionArchitecture, InceptionSpec, InceptionTime
from signdistill.models import Architecture, ConvPoolLSTM, count_parameters

CONF = Path(__file__).resolve().parents[1] / "conf"
LIS = {"in_channels": 18, "n_classes": 26}  # LIS: 18 sensor channels, 26 letters


def small(**sizes) -> InceptionArchitecture:
    return InceptionArchitecture(**{"in_channels": 3, "n_classes": 4, "filters": 4, **sizes})


def with_random_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` in eval mode with BatchNorm statistics and affine parameters away from their
    initial identity, and a non-trivial standardization, so none of them can go unnoticed."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    c = model.arch.in_channels
    model.normalize.fit(torch.randn(c, generator=g) * 5, torch.rand(c, generator=g) * 3 + 0.5)
    return model.eval()


@pytest.mark.parametrize("depth", [1, 3, 4, 6])
@pytest.mark.parametrize("length", [1, 2, 9, 39, 120])  # up to and past the widest kernel (40)
def test_output_shape_for_any_depth_and_length(depth, length):
    torch.manual_seed(0)
    model = InceptionTime(small(depth=depth)).eval()
    x = torch.randn(2, 3, length)
    assert model.features(x).shape == (2, 16, length)
    assert model(x).shape == (2, 4)
    assert model.arch.min_length() == 1


def test_a_one_channel_input_skips_the_first_bottleneck_only():
    model = InceptionTime(small(in_channels=1, depth=2))
    assert isinstance(model.blocks[0].bottleneck, nn.Identity)
    assert isinstance(model.blocks[1].bottleneck, nn.Conv1d)
    assert model.eval()(torch.randn(3, 1, 50)).shape == (3, 4)
    no_bottleneck = InceptionTime(small(bottleneck=0, depth=2))
    assert all(isinstance(b.bottleneck, nn.Identity) for b in no_bottleneck.blocks)


@pytest.mark.parametrize(
    ("depth", "residual", "shortcuts"),
    [(3, True, 1), (6, True, 2), (5, True, 1), (2, True, 0), (6, False, 0)],
)
def test_a_residual_shortcut_every_third_module(depth, residual, shortcuts):
    model = InceptionTime(small(depth=depth, residual=residual))
    assert model.arch.shortcuts() == len(model.shortcuts) == shortcuts
    assert [s.conv.in_channels for s in model.shortcuts] == [3, 16][:shortcuts]


def test_every_shortcut_is_on_the_forward_path():
    torch.manual_seed(0)
    model = with_random_statistics(InceptionTime(small(depth=6)))
    x = torch.randn(2, 3, 30)
    with torch.no_grad():
        before = model(x)
        for shortcut in model.shortcuts:
            shortcut.conv.weight.add_(1.0)
            after = model(x)
            assert not torch.allclose(before, after)
            before = after


@pytest.mark.parametrize(
    "sizes",
    [
        {"depth": 6},  # the published kernels 40/20/10: 1 + 6 * 39 = 235
        {"depth": 2},
        {"depth": 3, "kernel_sizes": (1,)},  # only the max-pool widens: 1 + 3 * 2
        {"depth": 4, "kernel_sizes": (5, 4)},
        {"depth": 3, "kernel_sizes": (7,), "residual": False},
    ],
)
def test_receptive_field_is_the_measured_one(sizes):
    torch.manual_seed(0)
    model = with_random_statistics(InceptionTime(small(filters=8, **sizes))).double()
    x = torch.randn(1, 3, 600, dtype=torch.float64)
    step = 300  # far from both ends, so no padding is within reach
    poked = x.clone()
    poked[0, :, step] += 10.0
    with torch.no_grad():
        changed = (model.features(poked) != model.features(x)).any(dim=1)[0]
    positions = changed.nonzero().flatten().tolist()
    before, after = model.arch.receptive_span()
    # output t sees inputs t - before .. t + after, so the poked step reaches these outputs:
    assert positions == list(range(step - after, step + before + 1))
    assert len(positions) == model.arch.receptive_field()
    if sizes == {"depth": 6}:
        assert model.arch.receptive_field() == 235


def test_standardization_is_applied_by_the_model_itself():
    torch.manual_seed(0)
    model = with_random_statistics(InceptionTime(small(depth=3)))
    mean, std = torch.tensor([1.0, -20.0, 300.0]), torch.tensor([0.5, 4.0, 100.0])
    z = torch.randn(2, 3, 25)
    with torch.no_grad():
        model.normalize.fit(torch.zeros(3), torch.ones(3))
        on_standardized = model(z)
        model.normalize.fit(mean, std)
        on_raw = model(z * std.view(1, 3, 1) + mean.view(1, 3, 1))
    assert torch.allclose(on_raw, on_standardized, atol=1e-5)
    assert model.state_dict()["normalize.mean"].flatten().tolist() == mean.tolist()


def test_an_inception_model_file_round_trips(tmp_path):
    torch.manual_seed(0)
    model = with_random_statistics(InceptionTime(small(depth=4, kernel_sizes=(9, 4))))
    save_model(tmp_path / "model.pt", model, {"classes": list("abcd")})
    assert torch.load(tmp_path / "model.pt", weights_only=True)["arch"]["family"] == "inception"
    loaded, meta = load_model(tmp_path / "model.pt")
    assert isinstance(loaded, InceptionTime) and not loaded.training
    assert loaded.arch == model.arch and meta == {"classes": list("abcd")}
    x = torch.randn(3, 3, 50) * 10
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_a_conv_lstm_file_without_a_family_still_loads(tmp_path):
    torch.manual_seed(0)
    model = ConvPoolLSTM(Architecture(3, 4, (4, 4), (6, 6))).eval()
    model.normalize.fit(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 5.0]))
    save_model(tmp_path / "model.pt", model, {})
    assert "family" not in torch.load(tmp_path / "model.pt", weights_only=True)["arch"]
    loaded, _ = load_model(tmp_path / "model.pt")
    assert isinstance(loaded, ConvPoolLSTM) and loaded.arch == model.arch
    x = torch.randn(2, 3, 40)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_a_file_of_an_unknown_family_is_refused_by_name(tmp_path):
    model = InceptionTime(small(depth=1))
    payload = {"arch": {**model.arch.as_dict(), "family": "transformer"}, "meta": {}}
    torch.save({**payload, "state_dict": model.state_dict()}, tmp_path / "model.pt")
    with pytest.raises(ModelFileError, match="model family 'transformer' is not known"):
        load_model(tmp_path / "model.pt")


@pytest.mark.parametrize(
    "arch", [small(kernel_sizes=(9, 4), residual=False), Architecture(7, 3, (5, 6), (11, 9))]
)
def test_the_registry_rebuilds_either_family_from_plain_data(arch):
    stored = arch.as_dict()
    assert architecture_from_dict(stored) == arch
    assert build_network(arch).arch == arch
    expected = InceptionTime if isinstance(arch, InceptionArchitecture) else ConvPoolLSTM
    assert type(build_network(architecture_from_dict(stored))) is expected


def test_the_config_builds_the_published_defaults():
    spec = instantiate(OmegaConf.load(CONF / "model" / "inception.yaml"))
    assert spec == InceptionSpec(role="teacher")
    assert spec.architecture(**LIS) == InceptionArchitecture(
        18, 26, depth=6, filters=32, bottleneck=32, kernel_sizes=(40, 20, 10), residual=True
    )
    with pytest.raises(ValueError, match="kernel_sizes"):
        InceptionSpec(role="teacher", kernel_sizes=())


def test_parameter_count_of_the_default_on_lis_shapes():
    # 1st module 73,088 (bottleneck 18x32, convs 32x32x(40+20+10), pool 1x1 18x32, BN 2x128),
    # 5 more of 80,128, shortcuts 2,560 + 16,640, head 128x26+26 = 3,354
    model = InceptionTime(InceptionSpec(role="teacher").architecture(**LIS))
    assert count_parameters(model) == 496_282


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The default network on LIS shapes (400 steps) as fp32 and int8 ONNX files."""
    torch.manual_seed(0)
    model = with_random_statistics(InceptionTime(InceptionArchitecture(**LIS)))
    folder = tmp_path_factory.mktemp("onnx")
    example = torch.randn(2, 18, 400)
    export_onnx(model, folder / "model.onnx", example, {"family": "inception"})
    quantize_int8(folder / "model.onnx", folder / "model.int8.onnx")
    return model, folder / "model.onnx", folder / "model.int8.onnx"


@pytest.mark.parametrize("batch", [1, 7])
def test_onnx_logits_match_pytorch(exported, batch):
    model, fp32, int8 = exported
    x = torch.randn(batch, 18, 400, generator=torch.Generator().manual_seed(batch)) * 4
    with torch.no_grad():
        reference = model(x).numpy()
    assert np.abs(onnx_logits(session(fp32), x.numpy()) - reference).max() < 1e-4
    quantized = onnx_logits(session(int8), x.numpy())
    assert np.abs(quantized - reference).max() < 0.1 * np.abs(reference).max()


def test_int8_quantizes_every_conv_and_the_head(exported):
    _, fp32, int8 = exported
    ops = [node.op_type for node in onnx.load(str(int8)).graph.node]
    assert "Conv" not in ops and "Gemm" not in ops
    n_convs = sum(op == "Conv" for op in (n.op_type for n in onnx.load(str(fp32)).graph.node))
    assert ops.count("ConvInteger") == n_convs == 6 * 5 + 2  # 5 per module, 2 shortcuts
    assert int8.stat().st_size < 0.3 * fp32.stat().st_size


def test_it_learns_separable_data():
    torch.manual_seed(0)
    n, t = 64, 60
    y = torch.arange(n) % 4
    x = torch.randn(n, 3, t) * 0.5
    x[:, 0] += torch.sin(torch.arange(t) * (1 + y.view(-1, 1)) * 0.3)  # a frequency per class
    model = InceptionTime(small(depth=3, filters=8, kernel_sizes=(10, 5, 2)))
    model.normalize.fit(x.mean(dim=(0, 2)), x.std(dim=(0, 2)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    with torch.no_grad():
        assert (model.eval()(x).argmax(1) == y).float().mean() > 0.9
