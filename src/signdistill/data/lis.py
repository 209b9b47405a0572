"""The Italian Sign Language alphabet EMG + IMU dataset (LIS), the project's real data.

I. Pacifici, P. Sernani, N. Falcionelli, S. Tomassini, A. F. Dragoni, "A surface electromyography
and inertial measurement unit dataset for the Italian Sign Language alphabet", Data in Brief 33
(2020) 106455, doi:10.1016/j.dib.2020.106455. Free for research and educational purposes.

Layout: ``Dataset/<LETTER>/<GUID>.json``, 26 letters x 30 recordings from one subject (Myo armband),
2 s at 200 Hz: ``emg.data`` 400 x 8, ``imu.data`` 400 x {gyroscope[3], acceleration[3],
orientation[4]}. The recording session (the timestamp's date) is the group id, so
``data.split=subject`` holds a session out.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from signdistill.data.cache import cached
from signdistill.data.io import check_finite, class_folders, listing, read_json
from signdistill.data.recordings import Recordings
from signdistill.errors import DataError
from signdistill.files import unwritable

log = logging.getLogger(__name__)

REPOSITORY = "airtlab/An-EMG-and-IMU-Dataset-for-the-Italian-Sign-Language-Alphabet"
COMMIT = "86d59a1"
# GitHub resolves the abbreviated commit, so the archive is pinned to the published data; no
# sha256 is set by default because GitHub does not promise byte-stable archives.
ARCHIVE_URL = f"https://github.com/{REPOSITORY}/archive/{COMMIT}.zip"

ChannelGroup = Literal["emg", "gyroscope", "acceleration", "orientation"]  # CHANNEL_GROUPS' keys
CHANNEL_GROUPS: dict[str, list[str]] = {
    "emg": [f"emg_{i}" for i in range(1, 9)],
    "gyroscope": ["gyro_x", "gyro_y", "gyro_z"],
    "acceleration": ["acc_x", "acc_y", "acc_z"],
    "orientation": ["quat_w", "quat_x", "quat_y", "quat_z"],
}
N_CLASSES = 26


@dataclass(frozen=True)
class LisDataset:
    """LIS recordings with the selected channel groups, ``length`` samples each.

    ``root``: a local copy (the folder holding ``Dataset/``, or ``Dataset/`` itself), which must
    exist; when None, the archive at ``url`` is downloaded once into the cache folder (checked
    against ``sha256`` when given). Every published recording has 400 samples; a longer one keeps
    its first ``length`` samples, a shorter one is an error naming the file.
    """

    root: str | None = None
    channels: Sequence[ChannelGroup] = ("emg", "gyroscope", "acceleration", "orientation")
    length: int = 400
    url: str = ARCHIVE_URL
    sha256: str | None = None

    def __post_init__(self) -> None:
        unknown = [c for c in self.channels if c not in CHANNEL_GROUPS]
        if unknown or not self.channels:
            raise DataError(
                f"data.source.channels={list(self.channels)}: unknown or empty; "
                f"choose from {list(CHANNEL_GROUPS)}"
            )
        if self.length < 1:
            raise DataError(f"data.source.length={self.length}: must be at least 1")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise DataError(
                f"data.source.sha256={self.sha256!r}: expected 64 lower-case hex digits, or null"
            )
        if self.root is not None:
            check_root(self.root)

    def load(self, cache_dir: str | Path) -> Recordings:
        """Parse the JSON files once; later loads read the cached arrays."""
        dataset = dataset_folder(self.root, Path(cache_dir).expanduser(), self.url, self.sha256)
        classes = class_folders(dataset, min_per_class=3, pattern="*.json")
        files = [f for fs in classes.values() for f in fs]
        key = {
            "root": str(dataset),
            "channels": list(self.channels),
            "length": self.length,
            "files": listing(files),
        }
        return cached(cache_dir, "lis", key, lambda: self._parse(classes))

    def _parse(self, classes: dict[str, list[Path]]) -> Recordings:
        xs, ys, groups = [], [], []
        files = [(label, f) for label, fs in enumerate(classes.values()) for f in fs]
        for label, path in tqdm(files, desc="parsing LIS JSON", unit="file", leave=False):
            values, session = read_recording(path, self.channels, self.length)
            xs.append(values)
            ys.append(label)
            groups.append(session)
        return Recordings(
            x=np.stack(xs),
            y=np.array(ys, dtype=np.int64),
            classes=list(classes),
            channels=[name for group in self.channels for name in CHANNEL_GROUPS[group]],
            groups=np.array(groups),
        )


def read_recording(
    path: Path, channels: Sequence[str], length: int | None
) -> tuple[np.ndarray, str]:
    """One LIS JSON file -> ((C, length) float32, session date), errors naming the file.

    Longer recordings keep their first ``length`` samples; shorter ones are an error.
    ``length=None`` keeps every sample the groups have in common.
    """
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise DataError(f"{path}: not a LIS recording (expected a JSON object)")
    session = _session(path, doc.get("timestamp"))
    blocks = [_block(path, doc, group) for group in channels]
    if length is None:
        length = min(len(block) for block in blocks)
    for group, block in zip(channels, blocks, strict=True):
        if len(block) < length:
            raise DataError(f"{path}: {group} has {len(block)} samples, fewer than {length}")
    return check_finite(np.concatenate([b[:length].T for b in blocks]), path), session


def _block(path: Path, doc: dict[str, Any], group: str) -> np.ndarray:
    """One channel group as (time, width) float32: ``emg.data`` or a key of each IMU sample."""
    width = len(CHANNEL_GROUPS[group])
    field = "emg.data" if group == "emg" else f"imu.data[].{group}"
    try:
        rows = doc["emg"]["data"] if group == "emg" else [s[group] for s in doc["imu"]["data"]]
    except (KeyError, TypeError, IndexError) as e:
        raise DataError(f"{path}: not a LIS recording ({field} missing or malformed: {e!r})") from e
    try:  # without a dtype, so that numbers written as strings ("12") are not converted
        block = np.asarray(rows)
    except (TypeError, ValueError) as e:  # ragged
        problem = _row_problem(rows, width) or f"non-numeric values ({e})"
        raise DataError(f"{path}: {field}: {problem}") from e
    if block.ndim != 2 or block.shape[1] != width:
        raise DataError(f"{path}: {field}: {_row_problem(rows, width) or block.shape}")
    if block.dtype.kind not in "iuf":  # strings, booleans, nulls: JSON values that are no number
        raise DataError(f"{path}: {field}: {_not_a_number(rows)}")
    return block.astype(np.float32)


def _row_problem(rows: Any, width: int) -> str | None:
    """Why ``rows`` is not a list of ``width``-value samples, naming the first bad sample.

    Only called once numpy has refused the rows, so the common, valid case costs no Python loop.
    """
    if not isinstance(rows, list) or not rows:
        return f"expected a non-empty list of samples, got {str(rows)[:40]}"
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            return f"sample {i} is {str(row)[:60]}, expected {width} values"
    return None


def _not_a_number(rows: list[list[Any]]) -> str:
    """The first value of ``rows`` that is not a JSON number, as 'sample i, value j is ...'."""
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return (
                    f"sample {i}, value {j} is {value!r} ({type(value).__name__}), expected a "
                    "number"
                )
    return "values that are not numbers"


def _session(path: Path, timestamp: Any) -> str:
    """'26/06/20/22:28:12' (dd/mm/yy/HH:MM:SS) -> '2020-06-26', the recording session."""
    try:
        return datetime.strptime(str(timestamp)[:8], "%d/%m/%y").date().isoformat()
    except ValueError as e:
        raise DataError(
            f"{path}: timestamp {timestamp!r} is not dd/mm/yy/HH:MM:SS (missing or malformed)"
        ) from e


def check_root(root: str) -> Path:
    """An explicit local copy must exist: a typo must not silently download another copy."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(
            f"data.source.root={root!r}: no such folder (conf/data/lis.yaml takes it from "
            "SIGNDISTILL_LIS_ROOT); point it at the folder holding Dataset/, or set it to null "
            "to download the dataset into the cache"
        )
    return base.resolve()


def dataset_folder(root: str | None, cache_dir: Path, url: str, sha256: str | None) -> Path:
    """The folder of class sub-folders: the local copy, or (root None) the downloaded archive's."""
    if root is not None:
        base = check_root(root)
        return base / "Dataset" if (base / "Dataset").is_dir() else base
    # One folder per archive URL, so pointing ``url`` at another version never reuses a stale copy.
    target = cache_dir.resolve() / f"lis-{hashlib.sha256(url.encode()).hexdigest()[:12]}"
    if not target.is_dir():
        download_and_extract(url, sha256, target)
        log.info("LIS dataset downloaded to %s", target)
        print(f"LIS dataset downloaded to {target} (set SIGNDISTILL_LIS_ROOT to use another copy)")
    return target / "Dataset"


def download_and_extract(url: str, sha256: str | None, target: Path) -> None:
    """Fetch the repository archive, verify it, and move its ``Dataset/`` to ``target``.

    Extraction happens in a temporary folder beside ``target`` and is renamed into place, so an
    interrupted download never leaves a half-extracted copy that a later run would trust.
    """
    read_only = unwritable(target.parent)
    if read_only is not None:
        raise DataError(
            f"{target.parent}: the cache folder the dataset would be downloaded to is read-only "
            f"({read_only}); make it writable, set paths.cache to a writable folder, or set "
            "SIGNDISTILL_LIS_ROOT (data.source.root) to a local copy"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".lis-") as tmp:
        archive = Path(tmp) / "archive.zip"
        fetch(url, archive)
        if sha256 is not None and (digest := _sha256(archive)) != sha256:
            raise DataError(f"{url}: sha256 {digest} does not match the expected {sha256}")
        staged = Path(tmp) / "staged"
        staged.mkdir()
        shutil.move(_extract_dataset(url, archive, Path(tmp) / "x"), staged / "Dataset")
        try:
            staged.rename(target)
        except OSError:
            if not target.is_dir():  # else another process (a parallel sweep job) got there first
                raise


def _extract_dataset(url: str, archive: Path, into: Path) -> Path:
    """Extract ``archive`` and return its ``Dataset/`` folder, checking it has the 26 letters."""
    try:
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)
    except zipfile.BadZipFile as e:
        raise DataError(f"{url}: the download is not a valid zip archive ({e})") from e
    for found in sorted(p for p in into.glob("**/Dataset") if p.is_dir()):
        if sum(p.is_dir() for p in found.iterdir()) == N_CLASSES:
            return found
    raise DataError(f"{url}: the archive has no Dataset/ folder with {N_CLASSES} letter folders")


def _sha256(path: Path) -> str:
    """Hex digest of a file, read in chunks (the archive need not fit in memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, path: Path) -> None:
    """Stream ``url`` to ``path`` with a progress bar; network failures become DataError."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, path.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="downloading LIS") as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, TimeoutError) as e:
        raise DataError(
            f"{url}: download failed ({e}); fetch the repository by hand and set "
            "SIGNDISTILL_LIS_ROOT (data.source.root) to its folder"
        ) from e
