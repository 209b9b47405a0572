"""What a device would run: ONNX export, int8 quantization, their accuracy and batch-1 latency.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``, chosen by measurement
on torch 2.13 / onnxruntime 1.32. Both exporters emit an ONNX ``LSTM`` node for the batch-first
``nn.LSTM`` with a dynamic batch axis, and both match PyTorch (max |diff| ~3e-8), but the
dynamo exporter's LSTM weights do not reach the node as plain initializers, so
``quantize_dynamic`` leaves the LSTM in fp32 (teacher: 691 KB fp32 -> 683 KB "int8", no speed-up),
and it takes 7-10 s per export against 0.1-1.5 s. The TorchScript export's LSTM becomes a
``DynamicQuantizeLSTM`` (teacher: 638 KB -> 197 KB); tests check that it stays so.

Quantization runs without ``quant_pre_process``: on the teacher it gave the same quantized ops,
the same size within 0.2 % and the same latency, so the extra step buys nothing here (and its
advice to run it is not printed: :mod:`signdistill.console` lists what is silenced, and why).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from pydantic import NonNegativeInt

from signdistill import console
from signdistill.models import ConvPoolLSTM


@dataclass(frozen=True)
class ExportSettings:
    """What is exported and measured for every final model (``conf/export/``).

    ``deploy`` names the file a device would run; the ``*_deployed`` metrics describe it, so a
    sweep can optimize what a device actually runs.
    """

    onnx: bool = True
    int8: bool = True
    deploy: Literal["fp32", "int8"] = "int8"
    latency_runs: NonNegativeInt = 200

    def __post_init__(self) -> None:
        if self.deploy == "int8" and not (self.onnx and self.int8):
            raise ValueError("deploy=int8: needs export.onnx=true and export.int8=true")


@dataclass(frozen=True)
class Split:
    """Recordings to measure accuracy on: (N, C, T) inputs and their labels."""

    x: torch.Tensor
    y: torch.Tensor


def measure(
    model: ConvPoolLSTM, val: Split, test: Split, folder: Path, meta: dict, settings: ExportSettings
) -> tuple[dict[str, float], list[Path]]:
    """Export ``model`` as ``settings`` asks into ``folder``; its files' sizes, accuracy on the
    validation and test recordings, and latency, and the files written (ONNX, int8 ONNX)."""
    if not settings.onnx:
        return {}, []
    fp32 = folder / "model.onnx"
    metrics = {"size_onnx_bytes": float(export_onnx(model, fp32, test.x[:2], meta))}
    metrics |= parity(model, fp32, test.x)
    files = [fp32]
    if settings.int8:
        int8 = folder / "model.int8.onnx"
        metrics["size_int8_bytes"] = float(quantize_int8(fp32, int8))
        metrics["test_acc_int8"] = accuracy(int8, test.x.numpy(), test.y.numpy())
        metrics["val_acc_int8"] = accuracy(int8, val.x.numpy(), val.y.numpy())
        files.append(int8)
        if settings.latency_runs:
            metrics |= latencies(model, fp32, int8, test.x[:1], settings.latency_runs)
    return metrics, files


def deployed(metrics: dict[str, float], deploy: str) -> dict[str, float]:
    """The size and accuracy of the file a device would run (``export.deploy``)."""
    if deploy == "int8":
        return {
            "size_deployed_bytes": metrics["size_int8_bytes"],
            "val_acc_deployed": metrics["val_acc_int8"],
            "test_acc_deployed": metrics["test_acc_int8"],
        }
    return {
        "size_deployed_bytes": metrics["size_onnx_bytes"],
        "val_acc_deployed": metrics["val_acc"],
        "test_acc_deployed": metrics["test_acc"],
    }


def export_onnx(model: ConvPoolLSTM, path: Path, example: torch.Tensor, meta: dict) -> int:
    """Write ``model`` (standardization included) as ONNX with a dynamic batch axis.

    ``meta`` (classes, channels, length, ...) is stored as JSON under the ``signdistill`` key of
    the file's ``metadata_props`` (kept by :func:`quantize_int8`), so a predictor needs nothing
    else. The example's batch size does not matter. Returns the file size in bytes.
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
    onnx.save(compact(proto), str(path))
    return path.stat().st_size


def compact(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` without what only a reader of the graph needs: tensors renamed to short
    hexadecimal names (the graph's input and output keep theirs), node names, doc strings and
    intermediate shape annotations dropped. Outputs are unchanged; a small student's int8 file
    shrinks by about 6 kB (14.4 -> 8.3 kB), since the exporter's and the quantizer's path-like
    names cost more bytes than its weights. Written here because neither onnx nor onnxruntime has
    such a pass (onnxsim and onnxoptimizer fold and fuse, they keep names)."""
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
    return proto


def read_metadata(path: Path) -> dict:
    """The metadata :func:`export_onnx` stored."""
    props = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return json.loads(props.get_modelmeta().custom_metadata_map["signdistill"])


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
    onnx.save(compact(onnx.load(str(out))), str(out))
    return out.stat().st_size


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session; one thread by default for stable latency measurements."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_logits(sess: ort.InferenceSession, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Logits for any number of recordings, run ``batch`` at a time to bound memory."""
    return np.concatenate(
        [sess.run(None, {"x": x[i : i + batch]})[0] for i in range(0, len(x), batch)]
    )


def parity(model: ConvPoolLSTM, path: Path, x: torch.Tensor) -> dict[str, float]:
    """Max absolute logit difference between PyTorch and ONNX Runtime, and prediction agreement."""
    with torch.no_grad():
        reference = model.eval()(x).numpy()
    got = onnx_logits(session(path), x.numpy())
    return {
        "onnx_max_abs_diff": float(np.abs(got - reference).max()),
        "onnx_same_predictions": float((got.argmax(1) == reference.argmax(1)).mean()),
    }


def accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of an ONNX model on (x, y), measured, not assumed."""
    return float((onnx_logits(session(path), x).argmax(1) == y).mean())


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
