"""On-disk cache of prepared datasets, keyed by the config that produced them.

Written by hand because it is short: a content key, an ``.npz`` and an atomic rename so a crash
never leaves half a file that a later run would trust. A damaged cache file (a disk filled up, a
file truncated by a copy) is rebuilt, and temporary files left by a killed writer are removed by
the next write in their folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from signdistill.data.recordings import DataError, Recordings

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # part of every cache key and teacher key: bumping it retrains every teacher

# A temporary file is named ``.<target>.<pid>@<host>.<random>.tmp`` so a later writer can tell
# whether the process writing it still runs.
STALE_AFTER_S = 24 * 3600
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_TEMPORARY = re.compile(r"^\..+\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[^.]+\.tmp$")


def cache_key(config: Mapping[str, Any]) -> str:
    """A stable hash of a JSON-able config (and the cache format version)."""
    blob = json.dumps({"v": CACHE_VERSION, **config}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def atomic_write_bytes(path: Path, write: Callable[[Any], None]) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it into place.

    Stale temporary files of earlier, killed writers in the same folder are removed first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}@{_HOST}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files of :func:`atomic_write_bytes` whose writer is gone.

    A file is stale when its writer ran on this host and that process no longer exists, or, from
    any host (a shared cache folder, where another machine's pids mean nothing here), when it has
    not been written to for ``STALE_AFTER_S``: a live writer appends as it goes, and no dataset or
    checkpoint takes a day to write. So another live writer's file is only removed if it stalls
    for a day; this process's own files are left to the code writing them. Files not named by
    :func:`atomic_write_bytes` are never touched. Returns the deleted paths.
    """
    now = time.time()
    removed = []
    for path in folder.glob(".*.tmp"):
        match = _TEMPORARY.match(path.name)
        if match is None:
            continue
        pid, host = int(match["pid"]), match["host"]
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:  # renamed into place or removed meanwhile
            continue
        if host == _HOST and pid != os.getpid() and not _process_exists(pid):
            reason = f"its writer, pid {pid}, no longer runs"
        elif age > STALE_AFTER_S:
            reason = f"untouched for {age / 3600:.0f} h (written on {host})"
        else:
            continue
        path.unlink(missing_ok=True)
        log.warning("removed the stale temporary file %s: %s", path, reason)
        removed.append(path)
    return removed


def _process_exists(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (POSIX; elsewhere assumed to, to be safe)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


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
    warning naming it: it holds nothing that ``build`` cannot make again.
    """
    path = Path(cache_dir).expanduser() / f"{name}-{cache_key(config)}.npz"
    if path.exists():
        try:
            return load_recordings(path)
        except DataError as e:
            log.warning("%s; deleting it and rebuilding the dataset", e)
            path.unlink(missing_ok=True)
    rec = build()
    save_recordings(path, rec)
    log.info("cached %s dataset at %s", name, path)
    return rec
