"""Predict the sign in one recording with a trained model, printing the top-k classes.

Models: a ``model.pt`` written by a run (weights only, with classes, channels and the training
length), its ONNX export (``model.onnx`` or ``model.int8.onnx``, metadata inside), or an MLflow
run URI (``runs:/<run_id>``), whose ``model.pt`` artifact is fetched.
Recordings: a LIS JSON file, a CSV with a header naming the channels, or a (channels, time)
``.npy``. The model applies its own standardization.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from signdistill import export
from signdistill.checkpoints import load_model
from signdistill.cli import debug_requested, guarded
from signdistill.data import lis
from signdistill.data.folder import read_recording as read_table
from signdistill.data.io import resize
from signdistill.errors import DataError, ModelFileError

# What ONNX Runtime raises for a file that is not a usable model (plain Exceptions).
ORT_ERRORS = (
    ort_errors.Fail,
    ort_errors.InvalidArgument,
    ort_errors.InvalidGraph,
    ort_errors.InvalidProtobuf,
    ort_errors.NoSuchFile,
)

# The project's own store (conf/logger/mlflow.yaml), unless MLFLOW_TRACKING_URI says otherwise.
DEFAULT_TRACKING_URI = f"sqlite:///{Path(__file__).resolve().parents[2] / 'mlruns' / 'mlflow.db'}"


def resolve_model(ref: str, tracking_uri: str) -> Path:
    """A local model file for ``ref``: a path, or ``runs:/<id>`` whose ``model.pt`` is fetched
    from the tracking store at ``tracking_uri``."""
    if not ref.startswith("runs:/"):
        return Path(ref)
    import mlflow

    run_id = ref.removeprefix("runs:/").split("/")[0]
    try:
        return Path(
            mlflow.artifacts.download_artifacts(
                f"runs:/{run_id}/model.pt", tracking_uri=tracking_uri
            )
        )
    except mlflow.exceptions.MlflowException as e:
        reason = str(e).strip().splitlines()[0]
        raise ModelFileError(
            f"{ref}: no model.pt of that run in {tracking_uri} ({reason})"
        ) from None


def read_input(path: Path, channels: list[str]) -> np.ndarray:
    """One recording as (C, T) in the model's channel order."""
    if not path.is_file():
        raise DataError(f"{path}: no such recording")
    if path.suffix == ".json":
        groups = [g for g, names in lis.CHANNEL_GROUPS.items() if names[0] in channels]
        values, _ = lis.read_recording(path, groups, length=None)
        names = [n for g in groups for n in lis.CHANNEL_GROUPS[g]]
        return _reorder(values, names, channels, path)
    values, names = read_table(path)
    if path.suffix == ".csv":
        return _reorder(values, names, channels, path)
    if values.shape[0] != len(channels):
        raise DataError(
            f"{path}: {values.shape[0]} channels, the model expects {len(channels)} ({channels})"
        )
    return values


def _reorder(values: np.ndarray, names: list[str], wanted: list[str], path: Path) -> np.ndarray:
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(
            f"{path}: missing channel(s) {missing}; the model expects {len(wanted)}: {wanted}"
        )
    return values[[names.index(c) for c in wanted]]


@dataclass
class Predictor:
    """Logits for a batch (N, C, T) of raw recordings, and the model's metadata."""

    logits: Callable[[np.ndarray], np.ndarray]
    meta: dict[str, Any]


def load_predictor(ref: str, tracking_uri: str = DEFAULT_TRACKING_URI) -> Predictor:
    """A PyTorch (``model.pt``) or ONNX Runtime (``.onnx``) predictor for ``ref``."""
    path = resolve_model(ref, tracking_uri)
    if path.suffix == ".onnx":
        return _onnx_predictor(path)
    model, meta = load_model(path)
    meta = {"min_length": model.arch.min_length(), **meta}

    def logits(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return Predictor(logits, meta)


def _onnx_predictor(path: Path) -> Predictor:
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        sess = export.session(path)
        meta = export.read_metadata(path)
    except (*ORT_ERRORS, KeyError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{path}: not a signdistill ONNX model ({reason})") from None
    return Predictor(lambda x: sess.run(None, {"x": x})[0], meta)


def predict(predictor: Predictor, values: np.ndarray, path: Path) -> np.ndarray:
    """Class probabilities for one (C, T) recording, resampled to the training length."""
    minimum = int(predictor.meta["min_length"])
    if values.shape[1] < minimum:
        raise DataError(f"{path}: {values.shape[1]} time steps, too short (needs >= {minimum})")
    length = int(predictor.meta.get("length", values.shape[1]))
    x = resize(values.astype(np.float32), length, "resample", path)[None]
    logits = predictor.logits(x)[0]
    e = np.exp(logits - logits.max())
    return e / e.sum()


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be >= 1")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = debug_requested(argv)
    parser = argparse.ArgumentParser(description="Top-k signs for one recording.")
    parser.add_argument("model", help="model.pt or model[.int8].onnx of a run, or runs:/<run_id>")
    parser.add_argument("recording", type=Path, help="LIS .json, .csv with header, or .npy")
    parser.add_argument("-k", "--top-k", type=positive_int, default=5)
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI),
        help="where runs:/ models are found (default: the project's mlruns/mlflow.db)",
    )
    args = parser.parse_args(argv)
    try:
        guarded(lambda: _print_top_k(args), debug)
    except SystemExit as e:  # a one-line error (2) or a signal (130, 143)
        return int(e.code or 0)
    return 0


def _print_top_k(args: argparse.Namespace) -> None:
    predictor = load_predictor(args.model, args.tracking_uri)
    meta = predictor.meta
    values = read_input(args.recording, list(meta["channels"]))
    probs = predict(predictor, values, args.recording)
    for i in np.argsort(probs)[::-1][: args.top_k]:
        print(f"{meta['classes'][i]}\t{probs[i]:.3f}")
