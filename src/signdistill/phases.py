"""Named points of a run, where a test can hold it to send it a signal deterministically.

With ``SIGNDISTILL_PAUSE_AT=<phase>`` (and ``SIGNDISTILL_PAUSE_FILE=<path>``), a run that reaches
that phase writes its pid to the file and waits there until it receives a signal. Phases: ``data``
(before the data is prepared), ``fit`` (inside training, through :class:`PauseCallback`),
``evaluate`` (after training), ``export`` (before the deployed files are written) and
``mlflow-write`` (inside an MLflow database write). Without the variable nothing happens.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from signdistill import signals

PAUSE_AT = "SIGNDISTILL_PAUSE_AT"
PAUSE_FILE = "SIGNDISTILL_PAUSE_FILE"


def reached(phase: str) -> None:
    """Hold the run here if a test asked to pause at ``phase``."""
    if os.environ.get(PAUSE_AT) == phase:
        Path(os.environ[PAUSE_FILE]).write_text(str(os.getpid()))
        while signals.received() is None:
            time.sleep(0.02)


class PauseCallback(Callback):
    """The ``fit`` phase: reached at the start of the second training epoch."""

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            reached("fit")


def arm_database_pause() -> None:
    """The ``mlflow-write`` phase: reached inside the first metric insert into the database."""
    if os.environ.get(PAUSE_AT) != "mlflow-write":
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    paused: list[bool] = []  # once only (removing a listener while it runs is not allowed)

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO metrics") and not paused:
            paused.append(True)
            reached("mlflow-write")

    event.listen(Engine, "before_cursor_execute", before)
