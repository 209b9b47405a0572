"""Your own recordings: one sub-folder per class, one file per recording.

This is how a researcher with the (non-public) ISL recordings, or any other sensor data, plugs them
in::

    my_signs/
      channels.txt            # optional, for .npy files: one channel name per line
      hello/
        subject1_rep01.csv    # header row naming the channels, one row per time step
        subject1_rep02.csv
        subject2_rep01.npy    # or a (channels, time) array
      thanks/
        ...

``python src/train.py data=folder data.source.root=my_signs data.source.length=300``; with
``data.source.subject_pattern='(subject\\d+)_'`` the subject becomes each recording's group, so
``data.split=subject`` holds subjects out. Recordings of different lengths are brought to
``length`` by ``resize`` (see :func:`signdistill.data.io.resize`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from signdistill.data.cache import cached
from signdistill.data.io import (
    RESIZE_MODES,
    class_folders,
    listing,
    read_csv,
    read_npy,
    resize,
)
from signdistill.data.recordings import DataError, Recordings

SUFFIXES = (".csv", ".npy")
CHANNEL_NAMES_FILE = "channels.txt"  # optional, names the channels of .npy recordings


@dataclass(frozen=True)
class FolderDataset:
    """Recordings under ``root/<class>/``; see the module docstring for the layout."""

    root: str
    length: int
    resize: str = "resample"
    subject_pattern: str | None = None
    channels: Sequence[str] | None = None
    min_per_class: int = 3

    def __post_init__(self) -> None:
        """Refuse a bad configuration before any file is read."""
        if self.length < 1:
            raise DataError(f"data.source.length={self.length}: must be at least 1")
        if self.resize not in RESIZE_MODES:
            raise DataError(f"data.source.resize={self.resize!r}: expected one of {RESIZE_MODES}")
        if self.subject_pattern is not None:
            try:
                re.compile(self.subject_pattern)
            except re.error as e:
                raise DataError(
                    f"data.source.subject_pattern={self.subject_pattern!r}: not a regex ({e})"
                ) from e

    def load(self, cache_dir: str | Path) -> Recordings:
        """Read every recording once; later loads with the same files and settings hit the cache."""
        root = Path(self.root).expanduser().resolve()
        classes = class_folders(root, self.min_per_class, "*.*")
        files = [f for fs in classes.values() for f in fs]
        names_file = root / CHANNEL_NAMES_FILE
        key = {
            "root": str(root),
            "length": self.length,
            "resize": self.resize,
            "subject_pattern": self.subject_pattern,
            "channels": None if self.channels is None else list(self.channels),
            "files": listing(files + ([names_file] if names_file.exists() else [])),
        }
        return cached(cache_dir, "folder", key, lambda: self._parse(root, classes))

    def _parse(self, root: Path, classes: dict[str, list[Path]]) -> Recordings:
        npy_names = _npy_channel_names(root)
        names: list[str] | None = None
        xs, ys, groups = [], [], []
        files = [(label, f) for label, fs in enumerate(classes.values()) for f in fs]
        for label, path in tqdm(files, desc="reading recordings", unit="file", leave=False):
            values, file_names = read_recording(path, npy_names)
            if names is None:
                names = file_names
            elif file_names != names:
                raise DataError(
                    f"{path}: channels {file_names[:6]}... differ from the other recordings' "
                    f"{names[:6]}... ({len(file_names)} vs {len(names)})"
                )
            values, selected = select_channels(values, names, self.channels, path)
            xs.append(resize(values, self.length, self.resize, path))
            ys.append(label)
            groups.append(self._group(path))
        return Recordings(
            x=np.stack(xs).astype(np.float32),
            y=np.array(ys, dtype=np.int64),
            classes=list(classes),
            channels=selected,
            groups=np.array(groups),
        )

    def _group(self, path: Path) -> str:
        if self.subject_pattern is None:
            return path.stem
        match = re.search(self.subject_pattern, path.name)
        if match is None:
            raise DataError(
                f"{path}: file name does not match data.source.subject_pattern="
                f"{self.subject_pattern!r}"
            )
        return match.groupdict().get("subject") or match.group(1 if match.groups() else 0)


def read_recording(path: Path, npy_names: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """A CSV or .npy recording -> ((C, T), channel names)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path)
    if suffix == ".npy":
        values = read_npy(path)
        names = npy_names or [f"ch_{i}" for i in range(values.shape[0])]
        if len(names) != values.shape[0]:
            raise DataError(f"{path}: {values.shape[0]} channels, channels.txt names {len(names)}")
        return values, names
    raise DataError(f"{path}: unsupported file type (expected one of {SUFFIXES})")


def select_channels(
    values: np.ndarray, names: list[str], wanted: Sequence[str] | None, path: Path
) -> tuple[np.ndarray, list[str]]:
    """Keep (and order) the ``wanted`` channels; all when None."""
    if wanted is None:
        return values, list(names)
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(f"{path}: unknown channel(s) {missing}; the file has {names}")
    return values[[names.index(c) for c in wanted]], list(wanted)


def _npy_channel_names(root: Path) -> list[str] | None:
    """Channel names of .npy recordings from ``root/channels.txt``, one per line; None if absent."""
    path = root / CHANNEL_NAMES_FILE
    if not path.exists():
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
