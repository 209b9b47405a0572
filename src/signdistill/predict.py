"""Predict the sign in one recording with a trained model, printing the top-k classes.

Models: a ``model.pt`` written by a run (weights only, with classes, channels and the training
length), its ONNX export (``model.onnx`` or ``model.int8.onnx``, metadata inside), or an MLflow
run URI (``runs:/<run_id>``), whose ``model.pt`` artifact is fetched.
Recordings: a LIS JSON file, a CSV with a header naming the channels, or a (channels, time)
``.npy``. The model applies its own standardization.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from signdistill import export
from signdistill.checkpoints import load_model
from signdistill.data import lis
from signdistill.data.folder import read_recording as read_table
from signdistill.data.io import resize
from signdistill.data.recordings import DataError


def resolve_model(ref: str) -> Path:
    """A local model file for ``ref`` (a path, or ``runs:/<id>[/...]`` on the tracking server)."""
    if ref.startswith("runs:/"):
        import mlflow

        run_id = ref.removeprefix("runs:/").split("/")[0]
        return Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model.pt"))
    path = Path(ref)
    if not path.is_file():
        raise DataError(f"{path}: no such model file")
    return path


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


def load_predictor(ref: str) -> Predictor:
    """A PyTorch (``model.pt``) or ONNX Runtime (``.onnx``) predictor for ``ref``."""
    path = resolve_model(ref)
    if path.suffix == ".onnx":
        sess = export.session(path)
        return Predictor(lambda x: sess.run(None, {"x": x})[0], export.read_metadata(path))
    model, meta = load_model(path)
    meta = {"min_length": model.arch.min_length(), **meta}

    def logits(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return Predictor(logits, meta)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Top-k signs for one recording.")
    parser.add_argument("model", help="model.pt or model[.int8].onnx of a run, or runs:/<run_id>")
    parser.add_argument("recording", type=Path, help="LIS .json, .csv with header, or .npy")
    parser.add_argument("-k", "--top-k", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        predictor = load_predictor(args.model)
        meta = predictor.meta
        values = read_input(args.recording, list(meta["channels"]))
        probs = predict(predictor, values, args.recording)
    except (DataError, OSError, KeyError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for i in np.argsort(probs)[::-1][: args.top_k]:
        print(f"{meta['classes'][i]}\t{probs[i]:.3f}")
    return 0
