"""Reading recordings from disk, with errors that name the file and the problem.

Shared by the LIS and folder sources and by the predictor, which reads single recordings in the
same formats (LIS JSON, CSV with a header, ``.npy``).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from signdistill.errors import DataError

Resize = Literal["resample", "crop", "pad"]
RESIZE_MODES: tuple[str, ...] = get_args(Resize)


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
    names = [str(c) for c in frame.columns]
    unnamed = [name for name in names if re.fullmatch(r"Unnamed: \d+", name)]
    if unnamed:  # e.g. pandas' DataFrame.to_csv with its index: the row number is no channel
        raise DataError(
            f"{path}: column {unnamed[0]!r} has no name in the header (a row index, as pandas "
            "writes with to_csv(index=True)?); name every channel in the header, or write the "
            "file without the index (to_csv(..., index=False))"
        )
    # pandas fills a short row with NaN, and takes the first column as an index when every row is
    # one value longer than the header: both are reported as the line they come from.
    if not frame.index.equals(pd.RangeIndex(len(frame))) or not np.isfinite(values).all():
        problem = _csv_problem(path, names)
        if problem is not None:
            raise DataError(f"{path}: {problem}")
    return check_finite(values.T, path), names


def _csv_problem(path: Path, names: list[str]) -> str | None:
    """The first ragged row or missing/non-finite value of a CSV, as 'line N: ...'.

    Only called once pandas' result shows a problem, so valid files are scanned once (by pandas).
    """
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header_seen = False
        for row in reader:
            if not row:  # a blank line, skipped by pandas too
                continue
            if not header_seen:
                header_seen = True
                continue
            if len(row) != len(names):
                kind = "short" if len(row) < len(names) else "long"
                return (
                    f"line {reader.line_num}: {len(row)} value(s) but the header names "
                    f"{len(names)} channels (a {kind}, ragged row; every row needs one value per "
                    "channel)"
                )
            bad = next((i for i, cell in enumerate(row) if not _finite(cell)), None)
            if bad is not None:
                return (
                    f"line {reader.line_num}, channel {names[bad]!r}: {row[bad]!r} is missing, "
                    "NaN or infinite"
                )
    return None


def _finite(cell: str) -> bool:
    try:
        return bool(np.isfinite(float(cell)))
    except ValueError:  # empty, or one of pandas' NA spellings ('NA', 'N/A', ...)
        return False


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


def resize(values: np.ndarray, length: int, mode: str, path: Path | str) -> np.ndarray:
    """Bring (C, T) to (C, length); ``path`` (a file, or file and line) names it in errors.

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


def class_folders(
    root: Path, min_per_class: int, pattern: str, min_classes: int = 2
) -> dict[str, list[Path]]:
    """{class name: sorted files} for ``root/<class>/<file>``; empty or tiny classes are errors,
    and so are fewer than ``min_classes`` classes (a classifier needs two).

    Hidden entries (``.DS_Store``, editor swap files) are skipped; a symbolic link that leads
    nowhere (to itself, in a loop, to a missing file) is an error naming it, not a recording
    silently left out.
    """
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root}: no class sub-folders (expected one folder per class)")
    if len(folders) < min_classes:
        raise DataError(
            f"{root}: {len(folders)} class folder(s) {[p.name for p in folders]}; a classifier "
            f"needs at least {min_classes} classes (one sub-folder per class)"
        )
    classes = {}
    for folder in folders:
        entries = [p for p in folder.glob(pattern) if not p.name.startswith(".")]
        broken = next((p for p in sorted(entries) if p.is_symlink() and not p.exists()), None)
        if broken is not None:
            raise DataError(
                f"{broken}: a symbolic link that leads nowhere (to itself, in a loop, or to a "
                "missing file); remove it or point it at a recording"
            )
        files = sorted(p for p in entries if p.is_file())
        if not files:
            raise DataError(f"{folder}: empty class folder (no {pattern} files)")
        if len(files) < min_per_class:
            raise DataError(
                f"{folder}: {len(files)} recording(s), at least {min_per_class} are needed to "
                "split the class into train, validation and test"
            )
        classes[folder.name] = files
    return classes


def check_same_classes(
    where: Path, found: Collection[str], expected: Sequence[str], reference: str
) -> None:
    """Refuse a predefined partition (``where``) whose classes differ from the training ones.

    Every class must be in every partition: a class without test recordings has no test score,
    and one without training recordings cannot be learnt.
    """
    missing = [c for c in expected if c not in found]
    if missing:
        raise DataError(
            f"{where}: no recordings of class(es) {missing}, which {reference} has; every class "
            "needs recordings in every partition"
        )
    extra = sorted(set(found) - set(expected))
    if extra:
        raise DataError(f"{where}: class(es) {extra} are not in {reference}")


def listing(files: list[Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of each file: a cache key that changes when any file does."""
    return [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
