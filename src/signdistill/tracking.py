"""MLflow: set-up, how a run is named, nested and tagged, and what every run logs.

Any driver (a sweep, a study script) records its runs through :class:`TrackingSettings`
(``logger.run_name``, ``logger.parent_run_id``, ``logger.tags``); nothing here knows who set them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import requests
import torch
from filelock import FileLock
from lightning.pytorch.loggers import MLFlowLogger
from mlflow.entities import RunStatus
from omegaconf import OmegaConf

from signdistill import console
from signdistill.errors import ConfigError
from signdistill.files import process_alive, unwritable

log = logging.getLogger(__name__)

HOST_TAG = "signdistill.host"
PID_TAG = "signdistill.pid"
# What the experiment is about, in MLflow's words (its demo and UI use this experiment tag; the
# UI's kind selector shows it): model training, not a GenAI app. MLflow 3.17's UI still opens an
# experiment in the view of its global "GenAI | Model training" switch unless the address asks
# (``?workflowType=machine_learning``): every link the project prints does (signdistill.urls).
KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
# When the process named by PID_TAG took the run over (a Unix time), if later than the run's start:
# a study's run is reopened by each sweep that resumes the study.
SINCE_TAG = "signdistill.owner_since"


class RunLogger(MLFlowLogger):
    """Lightning's MLflow logger on a run that :func:`run` owns: it does not end the run when
    training ends (Lightning would mark it FINISHED before its test metrics and files exist)."""

    def finalize(self, status: str = "success") -> None:
        """Leave the run's status to :func:`run`."""


@dataclass(frozen=True)
class TrackingSettings:
    """Where runs are logged (``conf/logger/``), and how the run's own model is recorded.

    ``run_name``, ``parent_run_id`` and ``tags`` apply to the model the run trains for itself,
    not to a teacher it trains on the side (that gets its own top-level run).
    """

    tracking_uri: str
    experiment_name: str = "signdistill"
    artifact_root: str | None = None
    log_model: bool = True
    run_name: str | None = None
    parent_run_id: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """How one MLflow run is named, tagged and nested."""

    name: str
    tags: dict[str, str]
    parent_run_id: str | None = None


def record(
    kind: str, tags: Mapping[str, str], settings: TrackingSettings, own: bool, recipe: str | None
) -> RunRecord:
    """The run of a model of ``kind``: the run's own model takes the driver's name, parent and
    tags (named by its recipe, else its kind); a teacher trained on the side is a plain run."""
    tags = {"kind": kind, **tags}
    if not own:
        return RunRecord(kind, tags)
    if recipe:
        tags["recipe"] = recipe
    tags |= {k: str(v) for k, v in settings.tags.items()}
    return RunRecord(settings.run_name or recipe or kind, tags, settings.parent_run_id)


def configure(tracking_uri: str, experiment_name: str, artifact_root: str | None) -> str:
    """Point MLflow at ``tracking_uri`` and return the experiment id (created on first use, and
    marked a model-training experiment); runs of this machine's dead processes left RUNNING there
    are marked FAILED first.

    A local SQLite store gets its folder created, and its artifacts a folder under ``mlruns/``:
    MLflow 3 no longer accepts the plain folder store, and its default artifact root would be the
    current directory. A server is asked whether it answers before anything else (MLflow itself
    would retry for minutes).
    """
    check_reachable(tracking_uri)
    check_writable(tracking_uri, artifact_root)
    mlflow.set_tracking_uri(tracking_uri)
    with _creation_lock(tracking_uri):
        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(experiment_name)
        if exp is None:
            location = Path(artifact_root).resolve().as_uri() if artifact_root else None
            # another worker may have created it meanwhile
            with contextlib.suppress(mlflow.exceptions.MlflowException):
                client.create_experiment(experiment_name, artifact_location=location)
            exp = client.get_experiment_by_name(experiment_name)
        if KIND_TAG not in exp.tags:  # a worker racing us sets the same value
            with contextlib.suppress(mlflow.exceptions.MlflowException):
                client.set_experiment_tag(exp.experiment_id, KIND_TAG, MODEL_TRAINING)
    fail_stale_runs(client, exp.experiment_id)
    return exp.experiment_id


def check_reachable(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Refuse an ``http(s)://`` tracking URI where no MLflow server answers within the timeout."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s).raise_for_status()
    except requests.RequestException as e:
        raise ConfigError(
            f"logger.tracking_uri={tracking_uri}: no MLflow tracking server answers there "
            f"({type(e).__name__}). Start one (mlflow server ...), or log locally with "
            "logger.tracking_uri=sqlite:///mlruns/mlflow.db"
        ) from None


def check_writable(tracking_uri: str, artifact_root: str | None) -> None:
    """Refuse a local MLflow store (a ``sqlite:///`` database, an artifact folder) that this
    process cannot write to, naming the read-only folder or file."""
    database = tracking_uri.removeprefix("sqlite:///")
    local = {
        f"logger.tracking_uri={tracking_uri}": database if database != tracking_uri else None,
        f"logger.artifact_root={artifact_root}": artifact_root,
    }
    for key, path in local.items():
        where = unwritable(Path(path)) if path else None
        if where is not None:
            raise ConfigError(
                f"{key}: {where} is read-only, and every run writes its MLflow records there; "
                "make it writable, or run from (or set paths.root to) a writable folder"
            )


def owner_tags(since: float | None = None) -> dict[str, str]:
    """The tags that name this machine and process as a run's owner (see :func:`fail_stale_runs`);
    ``since``: when this process took over a run that an earlier one started."""
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    if since is not None:
        tags[SINCE_TAG] = f"{since:.3f}"
    return tags


def owner_alive(run: mlflow.entities.Run) -> bool:
    """Whether the process that owns ``run`` may still be running: it is this process, runs on
    another machine (which cannot be known from here), or is alive here."""
    tags = run.data.tags
    if tags.get(HOST_TAG) != socket.gethostname():
        return HOST_TAG in tags
    return tags.get(PID_TAG) == str(os.getpid()) or not _process_gone(run)


def fail_stale_runs(client: mlflow.MlflowClient, experiment_id: str) -> list[str]:
    """Mark FAILED the RUNNING runs whose process on this machine is gone (killed with SIGKILL,
    or the machine went down); returns their ids. Runs of other machines are left alone."""
    running = client.search_runs(
        [experiment_id],
        f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{socket.gethostname()}'",
    )
    stale = [r for r in running if _process_gone(r)]
    for r in stale:
        pid = r.data.tags[PID_TAG]
        client.set_tag(r.info.run_id, "signdistill.error", f"process {pid} ended without a status")
        client.set_terminated(r.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        log.warning("run %s: its process %s is gone; marked FAILED", r.info.run_id, pid)
    return [r.info.run_id for r in stale]


def _process_gone(run: mlflow.entities.Run) -> bool:
    """True if the run's process no longer exists, or its pid now belongs to a process started
    after the run was started (or taken over: ``SINCE_TAG``)."""
    pid = int(run.data.tags.get(PID_TAG, "0"))
    since = float(run.data.tags.get(SINCE_TAG, run.info.start_time / 1000))
    return pid > 0 and not process_alive(pid, started_before=since + 1)


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a ``sqlite:///`` database file (SQLite creates only the file)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def _creation_lock(url: str) -> contextlib.AbstractContextManager:
    """For a SQLite store, an inter-process lock: two processes opening a new database at once
    both run MLflow's schema migrations, and one fails ("Online migration expected to match one
    row"). Servers and other databases serialize that themselves."""
    if not url.startswith("sqlite:///"):
        return contextlib.nullcontext()
    ensure_sqlite_folder(url)
    return FileLock(url.removeprefix("sqlite:///") + ".lock")


@contextlib.contextmanager
def run(
    experiment_id: str,
    run_name: str,
    tags: Mapping[str, str],
    parent_run_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run that ends FINISHED, FAILED on an error or KILLED on Ctrl-C or SIGTERM.

    Tagged with this machine and process, so that a run whose process is killed outright (SIGKILL)
    is marked FAILED by the next :func:`configure` instead of staying RUNNING.
    """
    active = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name,
        tags={**tags, **owner_tags()},
        parent_run_id=parent_run_id,
    )
    try:
        yield active
    except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into SystemExit(1)
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {'a.b.c': value} for MLflow params."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def log_config(resolved: Mapping[str, Any], replaced: Mapping[str, Any]) -> None:
    """The run's resolved config, with the ``replaced`` top-level nodes (what this run's model
    really is and how it was trained, e.g. a teacher's seed, a pruned network's sizes), as
    flattened params and as a YAML artifact."""
    config = {**resolved, **replaced}
    params = {k: str(v)[:6000] for k, v in flatten(config).items()}
    mlflow.log_params(params)
    mlflow.log_text(OmegaConf.to_yaml(OmegaConf.create(config)), "config.yaml")


def git_commit(repo: Path) -> str:
    """The checkout's commit (suffixed ``-dirty`` with local changes), or 'unknown'."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def log_figure(fig: Any, artifact_file: str) -> None:
    """Log a matplotlib figure as a PNG artifact and close it."""
    import matplotlib.pyplot as plt

    mlflow.log_figure(fig, artifact_file)
    plt.close(fig)


def log_file(path: Path, artifact_path: str | None = None) -> None:
    """Log a local file as an artifact."""
    mlflow.log_artifact(str(path), artifact_path)


def log_confusion(confusion: Any, classes: list[str]) -> None:
    """The test confusion matrix (a torchmetrics metric) as ``confusion_matrix.png``; the count in
    each cell only up to :data:`CONFUSION_TEXT` classes (beyond, they are too small to read, and
    drawing the simulator's 2,500 took 13 of a quick sweep trial's 30 seconds)."""
    n = len(classes)
    fig, ax = confusion.plot(labels=classes if n <= 30 else None, add_text=n <= CONFUSION_TEXT)
    fig.set_size_inches(max(6, n / 4), max(6, n / 4))
    ax.set_title("test confusion matrix")
    log_figure(fig, "confusion_matrix.png")


CONFUSION_TEXT = 30  # LIS (26 classes) keeps its counts


def log_pytorch_model(model: torch.nn.Module, example: np.ndarray) -> None:
    """The model via MLflow's PyTorch flavor, with an input example (and so a signature).

    ``example`` should hold two recordings: a batch of one would make the exported (pt2) model
    batch-1 only.
    """
    with console.quiet(console.TORCH_EXPORT):  # MLflow's torch.export of the LSTM warns
        mlflow.pytorch.log_model(
            model.eval(),
            name="model",
            input_example=example,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "signdistill"],
        )
