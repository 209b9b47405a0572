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
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from signdistill.data.cache import cached
from signdistill.data.io import check_finite, class_folders, listing, read_json
from signdistill.data.recordings import DataError, Recordings

log = logging.getLogger(__name__)

REPOSITORY = "airtlab/An-EMG-and-IMU-Dataset-for-the-Italian-Sign-Language-Alphabet"
COMMIT = "86d59a1"
ARCHIVE_URL = f"https://github.com/{REPOSITORY}/archive/{COMMIT}.zip"

CHANNEL_GROUPS: dict[str, list[str]] = {
    "emg": [f"emg_{i}" for i in range(1, 9)],
    "gyroscope": ["gyro_x", "gyro_y", "gyro_z"],
    "acceleration": ["acc_x", "acc_y", "acc_z"],
    "orientation": ["quat_w", "quat_x", "quat_y", "quat_z"],
}
N_CLASSES = 26


@dataclass(frozen=True)
class LisDataset:
    """LIS recordings with the selected channel groups, cropped to ``length`` samples.

    ``root``: a local copy (the folder holding ``Dataset/``, or ``Dataset/`` itself); when None or
    absent, the repository's archive is downloaded once into the cache folder.
    """

    root: str | None = None
    channels: Sequence[str] = ("emg", "gyroscope", "acceleration", "orientation")
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

    def load(self, cache_dir: str | Path) -> Recordings:
        """Parse the JSON files once; later loads read the cached arrays."""
        dataset = dataset_folder(self.root, Path(cache_dir).expanduser(), self.url, self.sha256)
        classes = class_folders(dataset, min_per_class=3, pattern="*.json")
        files = [f for fs in classes.values() for f in fs]
        key = {
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

    ``length=None`` keeps every sample the groups have in common.
    """
    doc = read_json(path)
    try:
        emg = np.asarray(doc["emg"]["data"], dtype=np.float32)
        imu = doc["imu"]["data"]
        parts = {
            group: np.asarray([sample[group] for sample in imu], dtype=np.float32)
            for group in CHANNEL_GROUPS
            if group != "emg" and group in channels
        }
        session = _session(doc["timestamp"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: not a LIS recording (missing or malformed {e})") from e
    if "emg" in channels:
        parts["emg"] = emg
    if length is None:
        length = min(len(parts[group]) for group in channels)
    blocks = []
    for group in channels:
        block, width = parts[group], len(CHANNEL_GROUPS[group])
        if block.ndim != 2 or block.shape[1] != width:
            raise DataError(f"{path}: {group} has shape {block.shape}, expected (time, {width})")
        if block.shape[0] < length:
            raise DataError(f"{path}: {group} has {block.shape[0]} samples, fewer than {length}")
        blocks.append(block[:length].T)
    return check_finite(np.concatenate(blocks), path), session


def _session(timestamp: str) -> str:
    """'26/06/20/22:28:12' -> '2020-06-26' (the recording session)."""
    return datetime.strptime(timestamp[:8], "%d/%m/%y").date().isoformat()


def dataset_folder(root: str | None, cache_dir: Path, url: str, sha256: str | None) -> Path:
    """The folder of class sub-folders: the local copy, or the downloaded archive's."""
    if root is not None and Path(root).expanduser().is_dir():
        base = Path(root).expanduser()
        return base / "Dataset" if (base / "Dataset").is_dir() else base
    if root is not None:
        log.warning("data.source.root=%s does not exist: using the downloaded copy", root)
    target = cache_dir / f"lis-{COMMIT}"
    if not target.is_dir():
        download_and_extract(url, sha256, target)
        print(f"LIS dataset downloaded to {target}")
    return target / "Dataset"


def download_and_extract(url: str, sha256: str | None, target: Path) -> None:
    """Fetch the repository archive, verify it, and move its ``Dataset/`` to ``target``.

    Extraction happens in a temporary folder beside ``target`` and is renamed into place, so an
    interrupted download never leaves a half-extracted copy that a later run would trust.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".lis-") as tmp:
        archive = Path(tmp) / "archive.zip"
        fetch(url, archive)
        if sha256 is not None:
            digest = hashlib.sha256(archive.read_bytes()).hexdigest()
            if digest != sha256:
                raise DataError(f"{url}: sha256 {digest} does not match the expected {sha256}")
        try:
            with zipfile.ZipFile(archive) as z:
                z.extractall(Path(tmp) / "x")
        except zipfile.BadZipFile as e:
            raise DataError(f"{url}: the download is not a zip archive ({e})") from e
        found = sorted((Path(tmp) / "x").glob("**/Dataset"))
        letters = [p for p in found[0].iterdir() if p.is_dir()] if found else []
        if len(letters) != N_CLASSES:
            raise DataError(f"{url}: the archive has no Dataset/ folder with {N_CLASSES} letters")
        staged = Path(tmp) / "staged"
        staged.mkdir()
        shutil.move(str(found[0]), staged / "Dataset")
        staged.rename(target)


def fetch(url: str, path: Path) -> None:
    """Stream ``url`` to ``path`` with a progress bar."""
    with urllib.request.urlopen(url) as response, path.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc="downloading LIS") as bar:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                bar.update(len(chunk))
