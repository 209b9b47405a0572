"""Predict the sign in one recording with a trained model, printing the top-k classes.

Models: a ``model.pt`` written by a run (weights only, with classes, channels and the training
length), or an MLflow run URI (``runs:/<run_id>``), whose ``model.pt`` artifact is fetched.
Recordings: a LIS JSON file, a CSV with a header naming the channels, or a (channels, time)
``.npy``. The model applies its own standardization.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from signdistill.checkpoints import load_model
from signdistill.data import lis
from signdistill.data.folder import read_recording as read_table
from signdistill.data.io import resize
from signdistill.data.recordings import DataError
from signdistill.models import ConvPoolLSTM


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


def predict(
    model: ConvPoolLSTM, meta: dict[str, Any], values: np.ndarray, path: Path
) -> np.ndarray:
    """Class probabilities for one (C, T) recording, resampled to the training length."""
    minimum = model.arch.min_length()
    if values.shape[1] < minimum:
        raise DataError(f"{path}: {values.shape[1]} time steps, too short (needs >= {minimum})")
    length = int(meta.get("length", values.shape[1]))
    x = torch.from_numpy(resize(values.astype(np.float32), length, "resample", path))
    with torch.no_grad():
        return torch.softmax(model.eval()(x[None]), dim=-1)[0].numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Top-k signs for one recording.")
    parser.add_argument("model", help="model.pt of a run, or runs:/<run_id>")
    parser.add_argument("recording", type=Path, help="LIS .json, .csv with header, or .npy")
    parser.add_argument("-k", "--top-k", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        model, meta = load_model(resolve_model(args.model))
        values = read_input(args.recording, list(meta["channels"]))
        probs = predict(model, meta, values, args.recording)
    except (DataError, OSError, KeyError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for i in np.argsort(probs)[::-1][: args.top_k]:
        print(f"{meta['classes'][i]}\t{probs[i]:.3f}")
    return 0
