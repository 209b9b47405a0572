"""Files that a crash cannot leave half-written, content keys, and whether a writer still lives.

Used by the dataset cache, model files, the teacher store and the MLflow records alike. Written by
hand because each piece is short: a content hash, a temporary file renamed into place, and a pid
check that also recognizes a recycled pid by its process's start time (``/proc``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # part of every cache key and teacher key: bumping it retrains every teacher

# A temporary file is named ``.<target>.<pid>@<host>.<random>.tmp``, a scratch folder
# ``signdistill-<pid>@<host>-<random>``, so a later process can tell whether its owner still runs.
STALE_AFTER_S = 24 * 3600
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_TEMPORARY = re.compile(r"^\..+\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[^.]+\.tmp$")
_SCRATCH = re.compile(r"^signdistill-(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)-[^/]+$")


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
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}@{HOST}.", suffix=".tmp"
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
    return _remove_stale(folder, ".*.tmp", _TEMPORARY, "temporary file")


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary folder for files on their way elsewhere (checkpoints, exported models).

    Removed when the block ends; the folders of processes killed outright (SIGKILL), which never
    reach that point, are removed by the next process that asks for one on this host.
    """
    base = Path(tempfile.gettempdir())
    _remove_stale(base, "signdistill-*", _SCRATCH, "scratch folder")
    with tempfile.TemporaryDirectory(prefix=f"signdistill-{os.getpid()}@{HOST}-") as d:
        yield Path(d)


def unwritable(path: Path) -> Path | None:
    """Where this process could not write to create or change ``path`` (a folder or file): the
    path itself if it exists read-only, else its nearest existing parent if that is read-only
    (where the missing folders would be created); None when it can write there. Read-only
    mounts count too (``os.access`` reports them)."""
    existing = Path(path).expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    mode = os.W_OK | os.X_OK if existing.is_dir() else os.W_OK
    return None if os.access(existing, mode) else existing


def process_alive(pid: int, started_before: float | None = None) -> bool:
    """Whether process ``pid`` runs on this host and, given ``started_before`` (a Unix time),
    is the same process as then: a pid reused by a process started later does not count.

    Without ``/proc`` (not Linux) a live pid is all that can be known; off POSIX every pid is
    assumed alive, to be safe.
    """
    if os.name != "posix" or pid <= 0:
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    if started_before is None:
        return True
    started = _start_time(pid)
    return started is None or started <= started_before


def _start_time(pid: int) -> float | None:
    """The Unix time process ``pid`` started (from ``/proc``), or None where that is unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        lines = Path("/proc/stat").read_text().splitlines()
    except FileNotFoundError:  # ended meanwhile: started "now" is as good as any
        return time.time()
    except OSError:
        return None
    boot = next(int(line.split()[1]) for line in lines if line.startswith("btime"))
    return boot + int(stat.rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")


def _remove_stale(folder: Path, glob: str, pattern: re.Pattern, what: str) -> list[Path]:
    """Remove the entries of ``folder`` named by ``pattern`` whose owner process is gone."""
    now = time.time()
    removed = []
    for path in folder.glob(glob):
        match = pattern.match(path.name)
        if match is None:
            continue
        pid, host = int(match["pid"]), match["host"]
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:  # renamed into place or removed meanwhile
            continue
        if host == HOST and pid != os.getpid() and not process_alive(pid):
            reason = f"its owner, pid {pid}, no longer runs"
        elif age > STALE_AFTER_S and path.is_file():
            reason = f"untouched for {age / 3600:.0f} h (written on {host})"
        else:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        log.warning("removed the stale %s %s: %s", what, path, reason)
        removed.append(path)
    return removed
