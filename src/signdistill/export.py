"""What a device would run: ONNX export, int8 quantization, their accuracy and batch-1 latency.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``, chosen by measurement
on torch 2.13 / onnxruntime 1.32. Both exporters emit an ONNX ``LSTM`` node for the batch-first
``nn.LSTM`` with a dynamic batch axis, and both match PyTorch (max |diff| ~3e-8), but the
dynamo exporter's LSTM weights do not reach the node as plain initializers, so
``quantize_dynamic`` leaves the LSTM in fp32 (teacher: 691 KB fp32 -> 683 KB "int8", no speed-up),
and it takes 7-10 s per export against 0.1-1.5 s. The exported graph is then simplified
(:func:`simplify`: what the exporter writes around the LSTM for its zero initial states and its
last step, duplicate and identity nodes, default attributes), with bit-identical logits.

Accuracy is measured as a device runs a file: one recording at a time (batch of 1), ONNX Runtime
on one CPU thread (:func:`accuracy`). That matters for dynamic quantization, whose activation
scales ONNX Runtime computes over the whole input tensor, batch included: the same file answers
differently for a recording depending on what else is in the batch.

int8 (``export.quantize``):

- ``static`` (default, :func:`quantize_static_int8`): the convolutions statically quantized,
  calibrated on training recordings only (:class:`Calibration`), QDQ format, per-channel 7-bit
  weights; the LSTMs' and the classifier's weights stored as int8 and computed in fp32
  (:func:`int8_weights`). ONNX Runtime has no static int8 LSTM: in QDQ format an LSTM listed for
  quantization only gets QuantizeLinear/DequantizeLinear pairs on all its inputs and outputs
  (W, R and B stored int8 per tensor, X, the states and the outputs fake-quantized), and still
  runs in fp32 on the dequantized weights; in QOperator format it is left in fp32; only dynamic
  quantization has an int8 LSTM (``DynamicQuantizeLSTM``). Every recording's logits are
  bit-identical at any batch size (with ONNX Runtime's default graph optimizations, which fold
  the weights' expansion into constants).
- ``dynamic``: ``quantize_dynamic`` (``DynamicQuantizeLSTM``, ``ConvInteger``, ``MatMulInteger``),
  batch-dependent as above. No ``quant_pre_process`` for either: on the teacher it gave the same
  quantized ops and the same size within 0.2 % (its advice is silenced, :mod:`signdistill.console`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveInt

from signdistill import console
from signdistill.models import ConvPoolLSTM

# ONNX Runtime's calibrators (``export.calibration_method``). Not its Entropy: quantize_static
# gives it 128 histogram bins for 128 quantized bins, one candidate range, so it returns MinMax's
# scales (checked on ORT 1.32).
CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "percentile": CalibrationMethod.Percentile,
}


@dataclass(frozen=True)
class ExportSettings:
    """What is exported and measured for every final model (``conf/export/``).

    ``deploy`` names the file a device would run; the ``*_deployed`` metrics describe it, so a
    sweep can optimize what a device actually runs. ``quantize``: how the int8 file is made
    (``static``: calibrated on ``calibration_recordings`` training recordings by
    ``calibration_method``; ``dynamic``: scales computed at run time over each input batch).
    ``max_deploy_drop``: how many points of validation accuracy the deployed file may lose against
    the fp32 model before :func:`deploy_warning` says so.
    """

    onnx: bool = True
    int8: bool = True
    deploy: Literal["fp32", "int8"] = "int8"
    quantize: Literal["static", "dynamic"] = "static"
    calibration_recordings: PositiveInt = 256
    calibration_method: Literal["minmax", "percentile"] = "minmax"
    max_deploy_drop: NonNegativeFloat = 2.0
    latency_runs: NonNegativeInt = 200

    def __post_init__(self) -> None:
        if self.deploy == "int8" and not (self.onnx and self.int8):
            raise ValueError("deploy=int8: needs export.onnx=true and export.int8=true")


@dataclass(frozen=True)
class Split:
    """Recordings to measure accuracy on: (N, C, T) inputs and their labels."""

    x: torch.Tensor
    y: torch.Tensor


@dataclass(frozen=True)
class Splits:
    """The recordings :func:`measure` uses: ``train`` only to calibrate static quantization,
    ``val`` and ``test`` only to measure accuracy."""

    train: Split
    val: Split
    test: Split


def measure(
    model: ConvPoolLSTM, splits: Splits, folder: Path, meta: dict, settings: ExportSettings
) -> tuple[dict[str, float], list[Path]]:
    """Export ``model`` as ``settings`` asks into ``folder``; the metrics and the files written
    (``model.onnx``, ``model.int8.onnx``). Accuracies are of recordings run one at a time, as a
    device runs the file; ``splits.train`` only calibrates static quantization.

    Metrics: ``size_onnx_bytes``, ``val_acc_onnx``, ``test_acc_onnx``, ``onnx_max_abs_diff`` and
    ``onnx_same_predictions`` (against PyTorch, test recordings); with int8 ``size_int8_bytes``,
    ``quantize_seconds``, ``val_acc_int8``, ``test_acc_int8`` (and for dynamic quantization
    ``test_acc_int8_batched``, in batches of 256), and ``latency_ms_{torch,onnx,int8}``."""
    if not settings.onnx:
        return {}, []
    fp32 = folder / "model.onnx"
    metrics = {"size_onnx_bytes": float(export_onnx(model, fp32, splits.test.x[:2], meta))}
    metrics |= file_accuracy(session(fp32), splits, "onnx", model)
    files = [fp32]
    if settings.int8:
        int8 = folder / "model.int8.onnx"
        start = time.perf_counter()
        metrics["size_int8_bytes"] = float(quantize(fp32, int8, settings, splits.train.x))
        metrics["quantize_seconds"] = time.perf_counter() - start
        sess = session(int8)
        metrics |= file_accuracy(sess, splits, "int8")
        if settings.quantize == "dynamic":  # the figure a batch of 256 would give: not a device's
            metrics["test_acc_int8_batched"] = batched_accuracy(sess, splits.test)
        files.append(int8)
        if settings.latency_runs:
            metrics |= latencies(model, fp32, int8, splits.test.x[:1], settings.latency_runs)
    return metrics, files


def file_accuracy(
    sess: ort.InferenceSession, splits: Splits, name: str, model: ConvPoolLSTM | None = None
) -> dict[str, float]:
    """``val_acc_<name>`` and ``test_acc_<name>`` of a file, one recording at a time; with
    ``model``, also its parity with PyTorch on the test recordings."""
    out = {}
    for part in ("val", "test"):
        split = getattr(splits, part)
        logits = recording_logits(sess, split.x.numpy())
        out[f"{part}_acc_{name}"] = float((logits.argmax(1) == split.y.numpy()).mean())
        if model is not None and part == "test":
            out |= parity_of(model, split.x, logits)
    return out


def deployed(metrics: dict[str, float], settings: ExportSettings) -> dict[str, float]:
    """The size and per-recording accuracy of the file a device would run (``export.deploy``),
    and how many points of validation accuracy it loses against the fp32 model (``val_acc``)."""
    name, size = (
        ("int8", "size_int8_bytes") if settings.deploy == "int8" else ("onnx", "size_onnx_bytes")
    )
    out = {
        "size_deployed_bytes": metrics[size],
        "val_acc_deployed": metrics[f"val_acc_{name}"],
        "test_acc_deployed": metrics[f"test_acc_{name}"],
    }
    if "val_acc" in metrics:
        out["deploy_drop_points"] = 100 * (metrics["val_acc"] - out["val_acc_deployed"])
    return out


def deploy_warning(metrics: dict[str, float], settings: ExportSettings) -> str | None:
    """One sentence when the deployed file's validation accuracy (one recording at a time) is
    more than ``settings.max_deploy_drop`` points below the fp32 model's (``val_acc``, PyTorch),
    naming both and what to do; else None (also when no deployed file was measured)."""
    name = "int8" if settings.deploy == "int8" else "onnx"
    if "val_acc" not in metrics or f"val_acc_{name}" not in metrics:
        return None
    fp32, got = 100 * metrics["val_acc"], 100 * metrics[f"val_acc_{name}"]
    if not fp32 - got > settings.max_deploy_drop:
        return None
    if settings.deploy == "fp32":
        what, fixes = "fp32 ONNX", "check the ONNX export (onnx_max_abs_diff)"
    else:
        what = {"static": "statically", "dynamic": "dynamically"}[settings.quantize]
        what += " quantized int8"
        fixes = "export.deploy=fp32 or a wider model"
        if settings.quantize != "static":
            fixes = f"export.quantize=static, {fixes}"
    return (
        f"The deployed {what} file classifies {got:.1f} % of the validation recordings "
        f"correctly, {fp32 - got:.1f} points below the fp32 model's {fp32:.1f} % (more than "
        f"export.max_deploy_drop={settings.max_deploy_drop:g}): try {fixes}."
    )


def export_onnx(model: ConvPoolLSTM, path: Path, example: torch.Tensor, meta: dict) -> int:
    """Write ``model`` (standardization included) as ONNX with a dynamic batch axis.

    ``meta`` (classes, channels, length, ...) is stored as JSON under the ``signdistill`` key of
    the file's ``metadata_props`` (kept by the quantizers), so a predictor needs nothing else. The
    example's batch size does not matter. The graph is :func:`simplify`-ed and :func:`compact`-ed
    (same logits, bit for bit). Returns the file size in bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with console.quiet(console.ONNX_EXPORT):
        torch.onnx.export(
            model.eval(),
            (example,),
            str(path),
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "signdistill", json.dumps(meta)
    onnx.save(compact(simplify(proto)), str(path))
    return path.stat().st_size


def compact(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` without what only a reader of the graph needs: tensors renamed to short
    hexadecimal names (the graph's input and output keep theirs), node names, doc strings,
    intermediate shape annotations and metadata other than ``signdistill`` dropped. Outputs are
    unchanged; a small student's int8 file shrinks by about 6 kB (14.4 -> 8.3 kB), since the
    exporter's and the quantizer's path-like names cost more bytes than its weights. Written here
    because neither onnx nor onnxruntime has such a pass (onnxsim and onnxoptimizer fold and
    fuse, they keep names)."""
    graph = proto.graph
    nested = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    if any(a.type in nested for node in graph.node for a in node.attribute):
        return proto  # a subgraph may use the outer graph's names: left as it is
    keep = {v.name for v in [*graph.input, *graph.output]}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, format(len(names), "x"))

    for tensor in graph.initializer:
        tensor.name = short(tensor.name)
    for node in graph.node:
        node.name = node.doc_string = ""
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    del graph.value_info[:]
    proto.doc_string = graph.doc_string = ""
    kept = [p for p in proto.metadata_props if p.key == "signdistill"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    return proto


# --- graph simplification: every pass keeps the logits bit-identical (tests/test_export.py) ---

LSTMS = ("LSTM", "DynamicQuantizeLSTM")
# Attribute values the ONNX operator specifications define as defaults; ``None``: a list of
# zeros (pads) or of ones (dilations, strides), whatever its length.
DEFAULT_ATTRIBUTES = {
    "Conv": {"dilations": None, "group": 1, "pads": None, "strides": None},
    "AveragePool": {"ceil_mode": 0, "count_include_pad": 0, "pads": None, "dilations": None},
    "BatchNormalization": {"epsilon": 1e-5, "momentum": 0.9, "training_mode": 0},
    "Gemm": {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0},
}


def simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` with the same outputs, bit for bit, and fewer bytes: the constants the exporter
    writes as nodes stored as initializers; the LSTMs' all-zero initial states (their default)
    and the shape arithmetic that built them dropped; the last LSTM's last step read from its
    final hidden state instead of a Squeeze-Transpose-Gather of its whole output; identity and
    duplicate nodes merged; constant reshapes folded; attributes equal to their defaults, unused
    nodes, outputs and initializers dropped. The teacher's fp32 file: 42 nodes -> 17."""
    graph = proto.graph
    _constants_to_initializers(graph)
    _drop_zero_initial_states(graph)
    _last_step_from_final_state(graph)
    _bypass_identities(graph)
    _merge_duplicates(graph)
    _fold_constant_reshapes(graph)
    _drop_default_attributes(graph)
    _drop_zero_points(graph)
    _sum_lstm_biases(graph)
    _prune(graph)
    return proto


def _initializers(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in graph.initializer}


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output if out}


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _replace_nodes(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    kept = [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes]
    del graph.node[:]
    graph.node.extend(kept)


def _constants_to_initializers(graph: onnx.GraphProto) -> None:
    """``Constant`` nodes holding a tensor become initializers (a node costs twice the bytes)."""
    nodes = []
    for node in graph.node:
        if node.op_type == "Constant" and [a.name for a in node.attribute] == ["value"]:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            nodes.append(node)
    _replace_nodes(graph, nodes)


def _drop_zero_initial_states(graph: onnx.GraphProto) -> None:
    """An LSTM's initial_h and initial_c default to zeros: the exporter's ``ConstantOfShape``
    zeros (sized from the batch by Shape, Gather, Unsqueeze and Concat) are left to ``_prune``."""
    producers = _producers(graph)
    for node in graph.node:
        if node.op_type not in LSTMS:
            continue
        for k in (5, 6):
            source = producers.get(node.input[k]) if len(node.input) > k else None
            if source is None or source.op_type != "ConstantOfShape":
                continue
            value = _attributes(source).get("value")
            if value is None or not np.any(numpy_helper.to_array(value)):
                node.input[k] = ""


def _last_step_from_final_state(graph: onnx.GraphProto) -> None:
    """``Gather(Transpose(Squeeze(Y, [1]), [1, 0, 2]), -1, axis=1)`` of a forward LSTM without
    sequence lengths is its final hidden state: ``Squeeze(Y_h, [0])``."""
    producers, inits = _producers(graph), _initializers(graph)

    def constant(name: str) -> list | None:
        return numpy_helper.to_array(inits[name]).tolist() if name in inits else None

    for k, gather in enumerate(graph.node):
        transpose = producers.get(gather.input[0]) if gather.op_type == "Gather" else None
        if transpose is None or transpose.op_type != "Transpose":
            continue
        squeeze = producers.get(transpose.input[0])
        lstm = producers.get(squeeze.input[0]) if squeeze and squeeze.op_type == "Squeeze" else None
        if lstm is None or lstm.op_type != "LSTM" or lstm.output[0] != squeeze.input[0]:
            continue
        if not (
            _attributes(gather).get("axis") == 1
            and constant(gather.input[1]) == -1
            and _attributes(transpose).get("perm") == [1, 0, 2]
            and len(squeeze.input) == 2
            and constant(squeeze.input[1]) == [1]
            and _attributes(lstm).get("direction", b"forward") == b"forward"
            and _attributes(lstm).get("layout", 0) == 0
            and not (len(lstm.input) > 4 and lstm.input[4])
        ):
            continue
        while len(lstm.output) < 2:
            lstm.output.append("")
        lstm.output[1] = lstm.output[1] or f"{lstm.output[0]}_h"
        axes = f"{gather.output[0]}_axes"
        graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), axes))
        graph.node[k].CopyFrom(helper.make_node("Squeeze", [lstm.output[1], axes], gather.output))


def _rename_inputs(graph: onnx.GraphProto, renamed: dict[str, str]) -> None:
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]


def _bypass_identities(graph: onnx.GraphProto) -> None:
    """Consumers of an ``Identity`` read its input (unless it produces a graph output)."""
    outputs = {o.name for o in graph.output}
    renamed = {}
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        if node.op_type == "Identity" and node.output[0] not in outputs:
            renamed[node.output[0]] = node.input[0]
    _rename_inputs(graph, renamed)


def _merge_duplicates(graph: onnx.GraphProto) -> None:
    """Nodes computing the same op on the same inputs with the same attributes become one (the
    exporter transposes the pooled features twice, once for the LSTM, once for its states)."""
    outputs = {o.name for o in graph.output}
    seen: dict[tuple, onnx.NodeProto] = {}
    renamed: dict[str, str] = {}
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        attributes = tuple(a.SerializeToString() for a in node.attribute)
        key = (node.domain, node.op_type, tuple(node.input), attributes, len(node.output))
        first = seen.setdefault(key, node)
        if first is not node and not outputs.intersection(node.output):
            renamed.update((o, f) for o, f in zip(node.output, first.output, strict=True) if o)
    _rename_inputs(graph, renamed)


def _fold_constant_reshapes(graph: onnx.GraphProto) -> None:
    """A ``Reshape`` of an initializer by a constant shape becomes an initializer of that shape
    (the dynamic quantizer reshapes each convolution's bias so)."""
    inits = _initializers(graph)
    for node in graph.node:
        if node.op_type != "Reshape" or not all(name in inits for name in node.input[:2]):
            continue
        value = numpy_helper.to_array(inits[node.input[0]])
        shape = numpy_helper.to_array(inits[node.input[1]])
        if -1 in shape or 0 in shape or int(np.prod(shape)) != value.size:
            continue
        graph.initializer.append(numpy_helper.from_array(value.reshape(shape), node.output[0]))
        node.op_type = "Dropped"  # its output is now an initializer; _prune removes the node
        del node.output[:]


def _drop_default_attributes(graph: onnx.GraphProto) -> None:
    """Attributes whose value is the operator's default (kernel_shape too: inferred from the
    weights), on the standard operators listed in ``DEFAULT_ATTRIBUTES``; and an AveragePool's
    ``count_include_pad`` when it has no padding and no partial windows to count."""
    for node in graph.node:
        defaults = DEFAULT_ATTRIBUTES.get(node.op_type) if not node.domain else None
        if defaults is None:
            continue
        kept = [a for a in node.attribute if not _is_default(node.op_type, a, defaults)]
        if node.op_type == "AveragePool" and not {"pads", "ceil_mode"} & {a.name for a in kept}:
            kept = [a for a in kept if a.name != "count_include_pad"]
        del node.attribute[:]
        node.attribute.extend(kept)


def _is_default(op: str, attribute: onnx.AttributeProto, defaults: dict) -> bool:
    if op == "Conv" and attribute.name == "kernel_shape":
        return True
    if attribute.name not in defaults:
        return False
    value, default = helper.get_attribute_value(attribute), defaults[attribute.name]
    if default is None:
        return isinstance(value, list) and set(value) <= ({0} if attribute.name == "pads" else {1})
    if isinstance(default, float):
        return np.float32(value) == np.float32(default)
    return value == default


def _drop_zero_points(graph: onnx.GraphProto) -> None:
    """A ``DequantizeLinear`` of a stored int32 tensor (a bias) or of int8 convolution weights
    whose zero points are all zero needs none: zero is the default, and the stored tensor's type
    is the input's. A Gemm's int8 weights keep theirs: without, ONNX Runtime 1.32 no longer fuses
    the classifier into an integer ``QGemm`` (its logits then differ in the last bit between
    batch sizes: tests/test_quantize.py)."""
    inits = _initializers(graph)
    users: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, set()).add(node.op_type)
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3 or node.domain:
            continue
        data, zero = inits.get(node.input[0]), inits.get(node.input[2])
        if data is None or zero is None or np.any(numpy_helper.to_array(zero)):
            continue
        if data.data_type == onnx.TensorProto.INT32 or (
            data.data_type == onnx.TensorProto.INT8 and users.get(node.output[0]) == {"Conv"}
        ):
            del node.input[2]


def _prune(graph: onnx.GraphProto) -> None:
    """Drops nodes no graph output depends on, unused optional outputs of LSTMs, trailing empty
    inputs and unused initializers."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if not any(out in needed for out in node.output if out):
            continue
        if node.op_type in LSTMS:
            node.output[:] = [out if out in needed else "" for out in node.output]
        while node.output and not node.output[-1]:
            node.output.pop()
        while node.input and not node.input[-1]:
            node.input.pop()
        needed.update(name for name in node.input if name)
        kept.append(node)
    _replace_nodes(graph, kept[::-1])
    used = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(used)


def _sum_lstm_biases(graph: onnx.GraphProto) -> None:
    """An LSTM adds its input and recurrent biases (``B = [Wb, Rb]``) once, when the session
    starts: storing ``Wb + Rb`` padded with zeros to ``[Wb + Rb, 0]`` halves the biases' bytes and
    gives bit-identical logits (ONNX Runtime folds the ``Pad`` into a constant)."""
    inits = _initializers(graph)
    pads: list[onnx.NodeProto] = []
    for node in graph.node:
        bias = inits.get(node.input[3]) if node.op_type in LSTMS and len(node.input) > 3 else None
        if bias is None or bias.data_type != onnx.TensorProto.FLOAT:
            continue
        value = numpy_helper.to_array(bias)
        hidden = value.shape[1] // 8
        if value.shape[0] != 1 or hidden * 16 < 100:  # the Pad node costs about 80 bytes
            continue
        total = value[:, : 4 * hidden] + value[:, 4 * hidden :]
        graph.initializer.remove(bias)
        graph.initializer.append(numpy_helper.from_array(total, f"{bias.name}_sum"))
        widths = numpy_helper.from_array(
            np.array([0, 0, 0, 4 * hidden], np.int64), f"{bias.name}_pad"
        )
        graph.initializer.append(widths)
        pads.append(helper.make_node("Pad", [f"{bias.name}_sum", widths.name], [bias.name]))
        inits = _initializers(graph)
    _replace_nodes(graph, [*pads, *graph.node])


def read_metadata(path: Path) -> dict:
    """The metadata :func:`export_onnx` stored."""
    props = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return json.loads(props.get_modelmeta().custom_metadata_map["signdistill"])


def quantize(path: Path, out: Path, settings: ExportSettings, train: torch.Tensor) -> int:
    """The int8 file ``settings.quantize`` asks for; static quantization is calibrated on
    ``settings.calibration_recordings`` of the ``train`` recordings (a fixed random choice), and
    sees nothing else. Returns the file size."""
    if settings.quantize == "dynamic":
        return quantize_int8(path, out)
    calibration = calibration_set(train.numpy(), settings.calibration_recordings)
    return quantize_static_int8(path, out, calibration, settings.calibration_method)


def calibration_set(train: np.ndarray, n: int) -> np.ndarray:
    """``n`` of the ``train`` recordings (all if fewer), a fixed random choice, in their order."""
    return train[np.sort(np.random.default_rng(0).permutation(len(train))[:n])]


def quantize_int8(path: Path, out: Path) -> int:
    """Dynamic int8 quantization of the LSTM, Conv, MatMul and Gemm weights; returns the file size.

    The convolutions matter for small students: left in fp32 (ONNX Runtime's default op list
    here before) they were half of the tiny student's int8 file (20 of 40 kB).
    """
    with console.quiet_quantizer():
        quantize_dynamic(
            str(path),
            str(out),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["LSTM", "Conv", "MatMul", "Gemm"],
        )
    onnx.save(compact(simplify(onnx.load(str(out)))), str(out))
    return out.stat().st_size


class Calibration(CalibrationDataReader):
    """The recordings ONNX Runtime's calibrator runs the fp32 file on, ``batch`` at a time. The
    ranges it observes do not depend on the batch size (the same file from batches of 1, 16 or
    64), but the histogram calibrators (percentile) need every batch the same size: one."""

    def __init__(self, x: np.ndarray, batch: int = 1) -> None:
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.batch = batch
        self.start = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.start >= len(self.x):
            return None
        self.start += self.batch
        return {"x": self.x[self.start - self.batch : self.start]}

    def rewind(self) -> None:
        self.start = 0


def quantize_static_int8(
    path: Path,
    out: Path,
    calibration: np.ndarray,
    method: str = "minmax",
    lstm: Literal["int8-weights", "dynamic", "fp32"] = "int8-weights",
) -> int:
    """Static int8 quantization (QDQ) of the convolutions, calibrated on ``calibration``
    (training recordings): per-channel 7-bit weights, uint8 activations with fixed scales, run
    by ONNX Runtime as integer ``QLinearConv``. The classifier, with the BatchNorm before it
    folded in, gets int8 weights and fp32 activations (:func:`int8_weights`). ``lstm``: its
    weights int8 (the default), dynamically quantized (``DynamicQuantizeLSTM``: batch-dependent
    again), or left fp32. Returns the file size.

    Measured on 13 models (7 LIS, 6 simulator; validation and test recordings one at a time):

    - 7-bit weights (``reduce_range``), as ONNX Runtime advises for x86 without VNNI: with 8,
      the u8 x s8 products of a convolution can saturate the 16-bit sums of AVX2's ``vpmaddubsw``
      (this machine's), and did on a simulator student: its 8-bit file's arithmetic (ONNX Runtime
      with graph optimizations off) changed 2.1 % of the fp32 file's answers, the fused integer
      ``QLinearConv`` 29.5 %; with 7 bits 3.9 % both ways (13 models: 7.9 % against 3.5 %). A
      CPU with VNNI, or an ARM one, does not saturate: an 8-bit file answers differently per CPU.
    - A statically quantized classifier (integer ``QGemm``) changed 8.9 % of the answers
      against 3.5 % with int8 weights only, and cost a small LIS model 14.5 points.
    """
    with tempfile.TemporaryDirectory() as tmp, _quiet_static_quantizer():
        folded, staged = Path(tmp) / "folded.onnx", Path(tmp) / "int8.onnx"
        onnx.save(fold_batchnorm(onnx.load(str(path))), str(folded))
        quantize_static(
            str(folded),
            str(staged),
            Calibration(calibration),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv", "Relu"],
            per_channel=True,
            reduce_range=True,  # 7-bit weights: no int16 saturation on x86 without VNNI
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CALIBRATION_METHODS[method],
        )
        if lstm == "dynamic":
            with _quiet_requantization():
                quantize_dynamic(str(staged), str(staged), op_types_to_quantize=["LSTM"])
        proto = onnx.load(str(staged))
    int8_weights(proto, lstm=lstm == "int8-weights")
    onnx.save(compact(simplify(proto)), str(out))
    return out.stat().st_size


@contextlib.contextmanager
def _quiet_static_quantizer() -> Iterator[None]:
    """The quantizer's advice and INFO lines, and the progress its histogram calibrators print."""
    with console.quiet_quantizer(), contextlib.redirect_stdout(io.StringIO()):
        yield


class _AlreadyQuantized(logging.Filter):
    """``quantize_dynamic``'s warning for a file that holds QDQ nodes: on purpose when the static
    file's LSTM is quantized dynamically (one of the measured LSTM options)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please check if the model is already quantized")


@contextlib.contextmanager
def _quiet_requantization() -> Iterator[None]:
    root, drop = logging.getLogger(), _AlreadyQuantized()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def fold_batchnorm(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A ``BatchNormalization`` (inference) whose only consumer is a ``Gemm`` with ``transB=1``
    folded into the Gemm's weights and bias: ``W diag(s)`` and ``W t + c`` for ``BN(h) = s h + t``.
    For the int8 file only: its activations are then the LSTM's, bounded by (-1, 1), and it loses
    the BatchNorm's four vectors; in fp32 the logits would change in the last bits."""
    graph = proto.graph
    inits, producers = _initializers(graph), _producers(graph)
    for gemm in graph.node:
        norm = producers.get(gemm.input[0]) if gemm.op_type == "Gemm" else None
        if norm is None or norm.op_type != "BatchNormalization" or len(gemm.input) < 3:
            continue
        users = [n for n in graph.node if norm.output[0] in n.input]
        attrs, names = _attributes(gemm), [*norm.input[1:5], *gemm.input[1:3]]
        if users != [gemm] or attrs.get("transB") != 1 or attrs.get("transA", 0) != 0:
            continue
        if not all(name in inits for name in names) or {"alpha", "beta"} & set(attrs):
            continue
        gamma, beta, mean, var, w, c = (
            numpy_helper.to_array(inits[n]).astype(np.float64) for n in names
        )
        eps = _attributes(norm).get("epsilon", 1e-5)
        scale = gamma / np.sqrt(var + eps)
        folded_w = (w * scale).astype(np.float32)
        folded_c = (c + w @ (beta - mean * scale)).astype(np.float32)
        graph.initializer.extend(
            [
                numpy_helper.from_array(folded_w, f"{gemm.input[1]}_folded"),
                numpy_helper.from_array(folded_c, f"{gemm.input[2]}_folded"),
            ]
        )
        gemm.input[:] = [norm.input[0], f"{gemm.input[1]}_folded", f"{gemm.input[2]}_folded"]
    _prune(graph)
    return proto


def int8_weights(proto: onnx.ModelProto, lstm: bool = True) -> onnx.ModelProto:
    """Weight-only int8: the classifier's weights (a ``Gemm``'s, or a ``MatMul``'s once
    ``quantize_dynamic`` has split the Gemm for a dynamic LSTM), and with ``lstm`` every LSTM's
    input and recurrent weights (W, R), stored as int8 with symmetric scales and expanded by
    ``Cast`` and ``Mul``; they compute in fp32. ONNX Runtime folds the expansion into constants
    when the session starts, so the LSTM runs on prepacked weights and every recording's logits
    are bit-identical at any batch size, where a ``DequantizeLinear`` (which ONNX Runtime does
    not fold) leaves the LSTM unpacked, its logits then differing between batch sizes by about
    1e-6. Scales: one per LSTM gate row (output channel), one per classifier input unit (after
    :func:`fold_batchnorm` the BatchNorm's per-unit scale is in those columns)."""
    graph = proto.graph
    stored = [  # weights (outputs, inputs) for a Gemm with transB=1, else (inputs, outputs)
        (n.input[1], 0 if _attributes(n).get("transB", 0) == 1 else 1)
        for n in graph.node
        if n.op_type in ("Gemm", "MatMul")
    ]
    if lstm:
        stored += [(name, 2) for n in graph.node if n.op_type == "LSTM" for name in n.input[1:3]]
    expand = [node for name, axis in stored for node in _store_int8(graph, name, axis)]
    _replace_nodes(graph, [*expand, *graph.node])
    return proto


def _store_int8(graph: onnx.GraphProto, name: str, axis: int) -> list[onnx.NodeProto]:
    """The fp32 initializer ``name`` replaced by int8 values and one scale per slice along
    ``axis`` (the scales' shape broadcasts), and the nodes that compute it again."""
    weights = _initializers(graph).get(name)
    if weights is None or weights.data_type != onnx.TensorProto.FLOAT:
        return []
    value = numpy_helper.to_array(weights)
    peak = np.abs(value).max(axis=axis, keepdims=True)
    scale = np.where(peak > 0, peak / 127, 1).astype(np.float32)
    graph.initializer.remove(weights)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.round(value / scale).astype(np.int8), f"{name}_q"),
            numpy_helper.from_array(scale, f"{name}_s"),
        ]
    )
    return [
        helper.make_node("Cast", [f"{name}_q"], [f"{name}_f"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Mul", [f"{name}_f", f"{name}_s"], [name]),
    ]


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session; one thread by default, as a device's single inference stream
    runs it (and for stable latency measurements)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def recording_logits(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """Logits of each recording run on its own, a batch of 1, as a device runs the file."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return np.concatenate([sess.run(None, {"x": x[i : i + 1]})[0] for i in range(len(x))])


def onnx_logits(sess: ort.InferenceSession, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Logits for any number of recordings, run ``batch`` at a time: for a dynamically quantized
    file not what a device gets (:func:`recording_logits`)."""
    return np.concatenate(
        [sess.run(None, {"x": x[i : i + batch]})[0] for i in range(0, len(x), batch)]
    )


def accuracy(path: Path | ort.InferenceSession, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of an ONNX file (or session) on (x, y), one recording at a time: measured as a
    device runs it, not assumed."""
    sess = session(path) if isinstance(path, Path) else path
    return float((recording_logits(sess, x).argmax(1) == y).mean())


def batched_accuracy(sess: ort.InferenceSession, split: Split, batch: int = 256) -> float:
    """Accuracy on ``split`` run ``batch`` recordings at a time (what was logged before)."""
    return float((onnx_logits(sess, split.x.numpy(), batch).argmax(1) == split.y.numpy()).mean())


def parity(model: ConvPoolLSTM, path: Path, x: torch.Tensor) -> dict[str, float]:
    """Max absolute logit difference between PyTorch and ONNX Runtime, and prediction agreement."""
    return parity_of(model, x, recording_logits(session(path), x.numpy()))


def parity_of(model: ConvPoolLSTM, x: torch.Tensor, logits: np.ndarray) -> dict[str, float]:
    """:func:`parity` for logits ONNX Runtime already computed for ``x``."""
    with torch.no_grad():
        reference = model.eval()(x).numpy()
    return {
        "onnx_max_abs_diff": float(np.abs(logits - reference).max()),
        "onnx_same_predictions": float((logits.argmax(1) == reference.argmax(1)).mean()),
    }


def median_latency_ms(fn: Callable[[], object], warmup: int = 20, runs: int = 200) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def latencies(
    model: ConvPoolLSTM, onnx_path: Path, int8_path: Path, x1: torch.Tensor, runs: int
) -> dict:
    """Batch-1 CPU latency (median ms) of PyTorch eager, ONNX Runtime fp32 and int8.

    Every backend runs on one intra-op thread: on a shared or many-core machine multi-threaded
    timings of such small models mostly measure thread scheduling, and one thread is what a
    wearable's or phone's single inference stream gets.
    """
    model = model.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            eager = median_latency_ms(lambda: model(x1), runs=runs)
    finally:
        torch.set_num_threads(threads)
    feeds = {"x": x1.numpy()}
    fp32, int8 = session(onnx_path), session(int8_path)
    return {
        "latency_ms_torch": eager,
        "latency_ms_onnx": median_latency_ms(lambda: fp32.run(None, feeds), runs=runs),
        "latency_ms_int8": median_latency_ms(lambda: int8.run(None, feeds), runs=runs),
    }
