"""On-disk cache of prepared datasets, keyed by the config that produced them.

Written by hand because it is ten lines: a content key, an ``.npz`` and an atomic rename so a crash
never leaves half a file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from signdistill.data.recordings import DataError, Recordings

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def cache_key(config: Mapping[str, Any]) -> str:
    """A stable hash of a JSON-able config (and the cache format version)."""
    blob = json.dumps({"v": CACHE_VERSION, **config}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def atomic_write_bytes(path: Path, write: Callable[[Any], None]) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_recordings(path: Path, rec: Recordings) -> None:
    """Store ``rec`` as a compact ``.npz`` atomically."""
    meta = json.dumps({"classes": rec.classes, "channels": rec.channels})

    def write(f: Any) -> None:
        np.savez(f, x=rec.x, y=rec.y, groups=rec.groups.astype(str), meta=np.array(meta))

    atomic_write_bytes(path, write)


def load_recordings(path: Path) -> Recordings:
    """Load what :func:`save_recordings` wrote; a damaged file raises DataError naming it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return Recordings(
                x=z["x"],
                y=z["y"],
                classes=list(meta["classes"]),
                channels=list(meta["channels"]),
                groups=z["groups"],
            )
    except (OSError, ValueError, KeyError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: unreadable dataset cache ({e}); delete it to rebuild") from e


def cached(
    cache_dir: str | Path, name: str, config: Mapping[str, Any], build: Callable[[], Recordings]
) -> Recordings:
    """Return the dataset for ``config`` from ``cache_dir``, building and storing it on a miss."""
    path = Path(cache_dir).expanduser() / f"{name}-{cache_key(config)}.npz"
    if path.exists():
        return load_recordings(path)
    rec = build()
    save_recordings(path, rec)
    log.info("cached %s dataset at %s", name, path)
    return rec
