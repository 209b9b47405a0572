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

With a fixed split, ``data.source.layout=splits`` reads one such tree per partition::

    my_signs/
      train/hello/...  train/thanks/...
      val/hello/...    val/thanks/...      # optional: else drawn from train/ (data.val_fraction)
      test/hello/...   test/thanks/...

and ``data.split=predefined`` trains, validates and tests on exactly those recordings. Every class
of ``train/`` must be in ``test/`` (and in ``val/`` when there is one).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
from tqdm import tqdm

from signdistill.data.cache import cached
from signdistill.data.io import (
    RESIZE_MODES,
    Resize,
    check_same_classes,
    class_folders,
    listing,
    read_csv,
    read_npy,
    resize,
)
from signdistill.data.recordings import Recordings
from signdistill.errors import DataError

SUFFIXES = (".csv", ".npy")
CHANNEL_NAMES_FILE = "channels.txt"  # optional, names the channels of .npy recordings
Layout = Literal["classes", "splits"]
LAYOUTS: tuple[str, ...] = get_args(Layout)
SPLIT_FOLDERS = ("train", "val", "test")  # layout=splits: val/ is optional


@dataclass(frozen=True)
class FolderDataset:
    """Recordings under ``root/<class>/`` (or ``root/<train|val|test>/<class>/`` with
    ``layout='splits'``); see the module docstring. ``min_per_class`` applies to ``train/`` there.
    """

    root: str
    length: int
    resize: Resize = "resample"
    subject_pattern: str | None = None
    channels: Sequence[str] | None = None
    min_per_class: int = 3
    layout: Layout = "classes"

    def __post_init__(self) -> None:
        """Refuse a bad configuration before any file is read."""
        if self.length < 1:
            raise DataError(f"data.source.length={self.length}: must be at least 1")
        if self.resize not in RESIZE_MODES:
            raise DataError(f"data.source.resize={self.resize!r}: expected one of {RESIZE_MODES}")
        if self.layout not in LAYOUTS:
            raise DataError(f"data.source.layout={self.layout!r}: expected one of {LAYOUTS}")
        if self.min_per_class < 1:
            raise DataError(f"data.source.min_per_class={self.min_per_class}: must be >= 1")
        if self.subject_pattern is not None:
            try:
                re.compile(self.subject_pattern)
            except re.error as e:
                raise DataError(
                    f"data.source.subject_pattern={self.subject_pattern!r}: not a regex ({e})"
                ) from e
        if not Path(self.root).expanduser().is_dir():
            raise DataError(f"data.source.root={self.root!r}: no such data folder")

    @property
    def has_subjects(self) -> bool:
        """Whether the file names give each recording's subject (``subject_pattern``)."""
        return self.subject_pattern is not None

    @property
    def partitioned(self) -> bool:
        """Whether the recordings come in predefined train/val/test partitions."""
        return self.layout == "splits"

    def load(self, cache_dir: str | Path) -> Recordings:
        """Read every recording once; later loads with the same files and settings hit the cache."""
        root = Path(self.root).expanduser().resolve()
        classes, entries = self._entries(root)
        names_file = root / CHANNEL_NAMES_FILE
        key = {
            "root": str(root),
            "length": self.length,
            "resize": self.resize,
            "subject_pattern": self.subject_pattern,
            "channels": None if self.channels is None else list(self.channels),
            "layout": self.layout,
            "files": listing(
                [f for _, f, _ in entries] + ([names_file] if names_file.exists() else [])
            ),
        }
        return cached(cache_dir, "folder", key, lambda: self._parse(root, classes, entries))

    def _entries(self, root: Path) -> tuple[list[str], list[tuple[int, Path, str | None]]]:
        """The class names and (label, file, partition) of every recording, in a fixed order."""
        if self.layout == "classes":
            classes = class_folders(root, self.min_per_class, "*.*")
            return list(classes), _labelled(classes, list(classes), None)
        parts = _split_folders(root)
        train = class_folders(parts["train"], self.min_per_class, "*.*")
        names = list(train)
        entries = _labelled(train, names, "train")
        for part in ("val", "test"):
            if part in parts:
                found = class_folders(parts[part], 1, "*.*", min_classes=1)
                check_same_classes(parts[part], found, names, str(parts["train"]))
                entries += _labelled(found, names, part)
        return names, entries

    def _parse(
        self, root: Path, classes: list[str], entries: list[tuple[int, Path, str | None]]
    ) -> Recordings:
        npy_names = _npy_channel_names(root)
        files = [path for _, path, _ in entries]
        raw = [
            read_recording(path, npy_names)
            for path in tqdm(files, desc="reading recordings", unit="file", leave=False)
        ]
        names = check_same_header(
            [(path, names) for path, (_, names) in zip(files, raw, strict=True)]
        )
        xs = []
        for path, (values, _) in zip(files, raw, strict=True):
            values, _ = select_channels(values, names, self.channels, path)
            xs.append(resize(values, self.length, self.resize, path))
        partition = None if self.layout == "classes" else np.array([p for _, _, p in entries])
        return Recordings(
            x=np.stack(xs).astype(np.float32),
            y=np.array([label for label, _, _ in entries], dtype=np.int64),
            classes=classes,
            channels=list(self.channels) if self.channels is not None else names,
            groups=np.array([self._group(path) for _, path, _ in entries]),
            partition=partition,
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


def _labelled(
    classes: dict[str, list[Path]], names: list[str], partition: str | None
) -> list[tuple[int, Path, str | None]]:
    """(label, file, partition) for every file of ``classes``; labels index ``names``."""
    return [(names.index(c), f, partition) for c, files in classes.items() for f in files]


def _split_folders(root: Path) -> dict[str, Path]:
    """``train/``, ``test/`` and optional ``val/`` of a layout=splits root; nothing else."""
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")
    found = {p.name: p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    unexpected = sorted(set(found) - set(SPLIT_FOLDERS))
    missing = [name for name in ("train", "test") if name not in found]
    if unexpected or missing:
        raise DataError(
            f"{root}: data.source.layout=splits expects train/, test/ and optionally val/ "
            f"(each with one sub-folder per class); missing {missing}, unexpected {unexpected}"
        )
    return found


def check_same_header(headers: list[tuple[Path, list[str]]]) -> list[str]:
    """The channel names every recording shares; else an error naming the odd file out.

    The most common header is taken as the intended one, so the message names a file with a
    different header (not whichever file happened to be read first), with both headers.
    """
    counts = Counter(tuple(names) for _, names in headers)
    (common, n_common), *others = counts.most_common()
    if not others:
        return list(common)
    odd_path, odd = next((p, n) for p, n in headers if tuple(n) != common)
    example = next(p for p, n in headers if tuple(n) == common)
    raise DataError(
        f"{odd_path}: channels {_short(odd)} differ from the other recordings' {_short(common)} "
        f"({_difference(odd, common)}), the header of {n_common} of the {len(headers)} files "
        f"(e.g. {example}); give every file the same header"
    )


def _short(names: Sequence[str], limit: int = 8) -> str:
    """A header for a message: in full when short, else its start and its size."""
    if len(names) <= limit:
        return str(list(names))
    return f"{[*names[: limit - 1], '...']} ({len(names)} channels)"


def _difference(odd: Sequence[str], common: Sequence[str]) -> str:
    """What one header lacks or adds compared with another."""
    missing = [c for c in common if c not in odd]
    extra = [c for c in odd if c not in common]
    parts = []
    if missing:
        parts.append(f"lacks {missing}")
    if extra:
        parts.append(f"has extra {extra}")
    return "; ".join(parts) or "the same names in another order"


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
