"""ONNX export parity, metadata, int8 quantization measured on a trained fixture, latency."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from model_helpers import fit_small_model
from signdistill import export
from signdistill.models import Architecture, ConvPoolLSTM

META = {
    "classes": ["a", "b", "c"],
    "channels": ["x", "y", "z", "w"],
    "length": 60,
    "min_length": 17,
}


@pytest.fixture(scope="module")
def trained() -> tuple[ConvPoolLSTM, torch.Tensor, torch.Tensor]:
    """A small model trained to high accuracy on separable synthetic recordings."""
    g = torch.Generator().manual_seed(0)
    protos = torch.randn(3, 4, 60, generator=g)
    y = torch.arange(300) % 3
    x = protos[y] + 0.5 * torch.randn(300, 4, 60, generator=g)
    return fit_small_model(x[:200], y[:200], steps=60), x[200:], y[200:]


def test_onnx_matches_pytorch_for_any_batch_size(trained, tmp_path):
    model, x, _ = trained
    path = tmp_path / "m.onnx"
    size = export.export_onnx(model, path, x[:2], META)
    assert size == path.stat().st_size > 0
    for batch in (1, 7, 100):
        check = export.parity(model, path, x[:batch])
        assert check["onnx_max_abs_diff"] < 1e-4 and check["onnx_same_predictions"] == 1.0
    assert export.read_metadata(path) == META


def test_int8_is_smaller_and_its_accuracy_is_measured(trained, tmp_path):
    model, x, y = trained
    fp32, int8 = tmp_path / "m.onnx", tmp_path / "m.int8.onnx"
    fp32_size = export.export_onnx(model, fp32, x[:2], META)
    int8_size = export.quantize_int8(fp32, int8)
    assert int8_size < 0.6 * fp32_size
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= ops  # the LSTM itself is int8
    assert "ConvInteger" in ops and "Conv" not in ops  # and so are the convolutions
    assert export.read_metadata(int8) == META  # what the predictor reads from an int8 file
    with torch.no_grad():
        torch_acc = float((model(x).argmax(1) == y).float().mean())
    acc_fp32 = export.accuracy(fp32, x.numpy(), y.numpy())
    acc_int8 = export.accuracy(int8, x.numpy(), y.numpy())
    assert torch_acc > 0.8 and acc_fp32 == pytest.approx(torch_acc)
    assert acc_int8 >= acc_fp32 - 0.05  # a measured value, not a copy of the fp32 one
    logits = export.onnx_logits(export.session(int8), x.numpy())
    assert not np.allclose(logits, export.onnx_logits(export.session(fp32), x.numpy()))


def test_latencies_are_positive_medians(trained, tmp_path):
    model, x, _ = trained
    fp32, int8 = tmp_path / "m.onnx", tmp_path / "m.int8.onnx"
    export.export_onnx(model, fp32, x[:2], META)
    export.quantize_int8(fp32, int8)
    result = export.latencies(model, fp32, int8, x[:1], runs=5)
    assert set(result) == {"latency_ms_torch", "latency_ms_onnx", "latency_ms_int8"}
    assert all(v > 0 for v in result.values())


def written_as_is(model, x, folder, monkeypatch) -> tuple:
    """The fp32 and dynamic int8 files as the exporter and the quantizer write them."""
    fp32, int8 = folder / "m.onnx", folder / "m.int8.onnx"
    with monkeypatch.context() as patch:
        patch.setattr(export, "compact", lambda proto: proto)
        patch.setattr(export, "simplify", lambda proto: proto)
        export.export_onnx(model, fp32, x[:2], META)
        export.quantize_int8(fp32, int8)
    return fp32, int8


def test_compact_files_compute_the_same_logits_with_fewer_bytes(trained, tmp_path, monkeypatch):
    model, x, _ = trained
    fp32, int8 = written_as_is(model, x, tmp_path, monkeypatch)
    for path in (fp32, int8):
        before, size = export.onnx_logits(export.session(path), x.numpy()), path.stat().st_size
        onnx.save(export.compact(onnx.load(str(path))), str(path))
        assert path.stat().st_size < size - 2000  # names, not weights, are what goes
        assert np.array_equal(export.onnx_logits(export.session(path), x.numpy()), before)
        assert export.read_metadata(path) == META


def test_simplified_files_compute_bit_identical_logits_with_fewer_nodes(
    trained, tmp_path, monkeypatch
):
    model, x, _ = trained
    raw = written_as_is(model, x, tmp_path, monkeypatch)
    simplified = tmp_path / "s.onnx", tmp_path / "s.int8.onnx"
    export.export_onnx(model, simplified[0], x[:2], META)
    export.quantize_int8(simplified[0], simplified[1])  # the dynamic file of the simplified one
    for before, after in zip(raw, simplified, strict=True):
        old, new = export.session(before), export.session(after)
        for batch in (1, 100):  # dynamic int8: batch-dependent, but the same as before
            want = export.onnx_logits(old, x.numpy(), batch)
            assert np.array_equal(export.onnx_logits(new, x.numpy(), batch), want)
        nodes = [n.op_type for n in onnx.load(str(after)).graph.node]
        assert len(nodes) < len(onnx.load(str(before)).graph.node) - 10
        assert not {"ConstantOfShape", "Shape", "Gather", "Identity", "Constant"} & set(nodes)
        assert after.stat().st_size < before.stat().st_size - 1000
        assert export.read_metadata(after) == META


def test_lstm_biases_are_stored_summed_with_the_same_logits(tmp_path):
    torch.manual_seed(0)
    model = ConvPoolLSTM(Architecture(4, 3, (8, 8), (32,))).eval()
    x = torch.randn(20, 4, 60)
    path = tmp_path / "m.onnx"
    export.export_onnx(model, path, x[:2], META)
    graph = onnx.load(str(path)).graph
    biases = [t for t in graph.initializer if list(t.dims) == [1, 4 * 32]]
    assert len(biases) == 1 and "Pad" in {n.op_type for n in graph.node}
    check = export.parity(model, path, x)
    assert check["onnx_max_abs_diff"] < 1e-5 and check["onnx_same_predictions"] == 1.0
