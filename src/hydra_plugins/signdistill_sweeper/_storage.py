"""The study's storage named by ``hydra.sweeper.storage``: a database or a journal file.

- Any SQLAlchemy URL (``sqlite:///mlruns/optuna.db``, ``postgresql://...``): Optuna's
  ``RDBStorage``, with heartbeats, so workers fail each other's trials when one dies.
- ``journal://<path>``: Optuna's ``JournalStorage`` on a ``JournalFileBackend``, an append-only
  log file for a shared filesystem without a database server (NFS included: the file backend
  locks with a symlink). ``journal:///abs/optuna.log`` is an absolute path,
  ``journal://mlruns/optuna.log`` one relative to the working directory. Optuna 5's journal
  storage keeps no heartbeats: a trial whose worker is killed stays RUNNING there.

Imported when a sweep starts and inside a pruned trial's job (``job.running_trial``), never while
Hydra scans plugins (its name starts with ``_``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from sqlalchemy.engine import make_url

JOURNAL = "journal://"


def journal_path(url: str) -> Path | None:
    """The log file of a ``journal://<path>`` storage URL; None for a database URL."""
    if not url.startswith(JOURNAL):
        return None
    path = url.removeprefix(JOURNAL)
    if not path:
        raise ValueError(f"hydra.sweeper.storage={url}: name the journal file, e.g. {JOURNAL}/abs")
    return Path(path)


def open_storage(
    url: str,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    stale_callback: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> BaseStorage:
    """The storage at ``url``, its file's folder created; the heartbeat settings apply to a
    database only (a journal file has none in Optuna 5)."""
    path = journal_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    _create_sqlite_folder(url)
    return RDBStorage(
        url,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        heartbeat_stale_trial_callback=stale_callback,
    )


def heartbeat_interval(storage: BaseStorage | None) -> int | None:
    """Seconds between a running trial's heartbeats; None where the storage keeps none."""
    get = getattr(storage, "get_heartbeat_interval", None)  # RDBStorage's (BaseHeartbeat)
    return get() if get is not None else None


def _create_sqlite_folder(url: str) -> None:
    """SQLite creates a database file, not its folder (the default ``mlruns/optuna.db``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
