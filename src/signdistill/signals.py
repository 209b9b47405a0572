"""Ctrl-C (SIGINT) and SIGTERM stop a run cleanly: its MLflow run ends KILLED and the process exits
with 128 + the signal number (130, 143), never in the middle of an MLflow write.

An interrupt that lands while the main thread is inside MLflow or its database layer is held back
until that call returns (re-checked every 50 ms by a timer): raised inside an SQLite transaction,
it would leave the database locked for the rest of the process, so marking the run KILLED would
wait out SQLite's lock timeouts (about 40 s) and fail. SIGTERM is raised as :class:`Terminated`, a
KeyboardInterrupt, so Lightning shuts down as on Ctrl-C (its own SIGTERM handling exits with 0).
"""

from __future__ import annotations

import signal
from types import FrameType

# Modules in which an interrupt would cut a database write in two.
WRITERS = ("mlflow.", "sqlalchemy.", "sqlite3", "alembic.")
RETRY_S = 0.05

_received: int | None = None
_pending = False  # held back inside a write, to be raised by the retry timer


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


def install() -> None:
    """Handle SIGINT and SIGTERM as described above (main thread only, as Python requires)."""
    global _received, _pending
    _received, _pending = None, False
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGALRM, _on_retry)


def received() -> int | None:
    """The first signal received since :func:`install`, if any."""
    return _received


def exit_code() -> int | None:
    """The conventional exit code for the received signal (128 + its number), if any."""
    return None if _received is None else 128 + _received


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _received
    if _received is None:
        _received = signum
    _raise_when_safe(frame)


def _on_retry(signum: int, frame: FrameType | None) -> None:
    if _pending:
        _raise_when_safe(frame)


def _raise_when_safe(frame: FrameType | None) -> None:
    global _pending
    _pending = _inside_write(frame)
    if _pending:
        signal.setitimer(signal.ITIMER_REAL, RETRY_S)
        return
    raise Terminated() if _received == signal.SIGTERM else KeyboardInterrupt()


def _inside_write(frame: FrameType | None) -> bool:
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(WRITERS):
            return True
        frame = frame.f_back
    return False
