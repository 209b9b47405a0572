"""Reading recordings from disk, with errors that name the file and the problem.

Shared by the LIS and folder sources and by the predictor, which reads single recordings in the
same formats (LIS JSON, CSV with a header, ``.npy``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from signdistill.data.recordings import DataError

RESIZE_MODES = ("resample", "crop", "pad")


def read_json(path: Path) -> Any:
    """Parse a JSON file; a corrupt or truncated one raises DataError naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable JSON file ({e})") from e


def read_csv(path: Path) -> tuple[np.ndarray, list[str]]:
    """A CSV with a header naming the channels, one row per time step -> ((C, T), names)."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV file ({e})") from e
    if frame.empty:
        raise DataError(f"{path}: no rows")
    try:
        values = frame.to_numpy(dtype=np.float32)
    except ValueError as e:
        raise DataError(f"{path}: non-numeric values ({e})") from e
    return check_finite(values.T, path), [str(c) for c in frame.columns]


def read_npy(path: Path) -> np.ndarray:
    """A (C, T) array saved with numpy; pickled objects are refused."""
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy file ({e})") from e
    if values.ndim != 2:
        raise DataError(f"{path}: expected a (channels, time) array, got shape {values.shape}")
    try:
        values = values.astype(np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: non-numeric values ({e})") from e
    return check_finite(values, path)


def check_finite(values: np.ndarray, path: Path) -> np.ndarray:
    """Refuse NaN and infinite values, naming the file and the first bad position."""
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        raise DataError(f"{path}: NaN or infinite value at index {tuple(int(i) for i in bad[0])}")
    return values


def resize(values: np.ndarray, length: int, mode: str, path: Path) -> np.ndarray:
    """Bring (C, T) to (C, length).

    ``resample``: linear interpolation over time (the whole recording, stretched or squeezed);
    ``crop``: centre crop, and an error when shorter; ``pad``: keep the start, crop the end when
    longer, pad the end with zeros when shorter.
    """
    if mode not in RESIZE_MODES:
        raise DataError(f"data.source.resize={mode!r}: expected one of {RESIZE_MODES}")
    t = values.shape[1]
    if t == length:
        return values
    if mode == "resample":
        if t < 2:
            raise DataError(f"{path}: {t} time step(s), too short to resample")
        grid = np.linspace(0, t - 1, length)
        return np.stack([np.interp(grid, np.arange(t), row) for row in values]).astype(np.float32)
    if t > length:
        start = (t - length) // 2 if mode == "crop" else 0
        return values[:, start : start + length]
    if mode == "crop":
        raise DataError(f"{path}: {t} time steps, shorter than data.source.length={length}")
    return np.pad(values, ((0, 0), (0, length - t)))


def class_folders(root: Path, min_per_class: int, pattern: str) -> dict[str, list[Path]]:
    """{class name: sorted files} for ``root/<class>/<file>``; empty or tiny classes are errors.

    Hidden entries (``.DS_Store``, editor swap files) are skipped.
    """
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root}: no class sub-folders (expected one folder per class)")
    classes = {}
    for folder in folders:
        files = sorted(
            p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith(".")
        )
        if not files:
            raise DataError(f"{folder}: empty class folder (no {pattern} files)")
        if len(files) < min_per_class:
            raise DataError(
                f"{folder}: {len(files)} recording(s), at least {min_per_class} are needed to "
                "split the class into train, validation and test"
            )
        classes[folder.name] = files
    return classes


def listing(files: list[Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of each file: a cache key that changes when any file does."""
    return [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
