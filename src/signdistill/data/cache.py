"""On-disk cache of prepared datasets, keyed by the config that produced them.

Written by hand because it is short: a content key, an ``.npz`` and an atomic rename
(:mod:`signdistill.files`) so a crash never leaves half a file that a later run would trust. A
damaged cache file (a disk filled up, a file truncated by a copy) is rebuilt, and temporary files
left by a killed writer are removed by the next write in their folder.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from signdistill.data.recordings import Recordings
from signdistill.errors import DataError
from signdistill.files import atomic_write_bytes, cache_key, unwritable

log = logging.getLogger(__name__)


def save_recordings(path: Path, rec: Recordings) -> None:
    """Store ``rec`` as a compact ``.npz`` atomically."""
    meta = json.dumps({"classes": rec.classes, "channels": rec.channels})
    extra = {} if rec.partition is None else {"partition": rec.partition}

    def write(f: Any) -> None:
        np.savez(f, x=rec.x, y=rec.y, groups=rec.groups.astype(str), meta=np.array(meta), **extra)

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
                partition=z["partition"] if "partition" in z.files else None,
            )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # incl. DataError
        raise DataError(f"{path}: unreadable dataset cache ({type(e).__name__}: {e})") from e


def cached(
    cache_dir: str | Path, name: str, config: Mapping[str, Any], build: Callable[[], Recordings]
) -> Recordings:
    """Return the dataset for ``config`` from ``cache_dir``, building and storing it on a miss.

    A cache file that cannot be read back (truncated, corrupt) is deleted and rebuilt, with a
    warning naming it: it holds nothing that ``build`` cannot make again. A read-only cache folder
    serves what it holds; a miss there is refused before ``build`` reads anything.
    """
    path = Path(cache_dir).expanduser() / f"{name}-{cache_key(config)}.npz"
    read_only = unwritable(path.parent)
    if path.exists():
        try:
            return load_recordings(path)
        except DataError as e:
            if read_only is not None:  # cannot be rebuilt here
                raise DataError(f"{e}; its folder is read-only: set paths.cache elsewhere") from e
            log.warning("%s; deleting it and rebuilding the dataset", e)
            path.unlink(missing_ok=True)
    if read_only is not None:
        where = "" if read_only == path.parent.absolute() else f" ({read_only})"
        raise DataError(
            f"{path.parent}: the dataset cache folder is read-only{where} and does not hold this "
            "dataset yet; make it writable, or set paths.cache to a writable folder"
        )
    rec = build()
    save_recordings(path, rec)
    log.info("cached %s dataset at %s", name, path)
    return rec
