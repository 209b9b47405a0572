"""MLflow: set-up, how a run is named, nested and tagged, and what every run logs.

Any driver (a sweep, a study script) records its runs through :class:`TrackingSettings`
(``logger.run_name``, ``logger.parent_run_id``, ``logger.tags``); nothing here knows who set them.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from filelock import FileLock
from mlflow.entities import RunStatus
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


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
    """Point MLflow at ``tracking_uri`` and return the experiment id (created on first use).

    A local SQLite store gets its folder created, and its artifacts a folder under ``mlruns/``:
    MLflow 3 no longer accepts the plain folder store, and its default artifact root would be the
    current directory.
    """
    mlflow.set_tracking_uri(tracking_uri)
    with _creation_lock(tracking_uri):
        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(experiment_name)
        if exp is not None:
            return exp.experiment_id
        location = Path(artifact_root).resolve().as_uri() if artifact_root else None
        try:
            return client.create_experiment(experiment_name, artifact_location=location)
        except mlflow.exceptions.MlflowException:  # another worker created it meanwhile
            return client.get_experiment_by_name(experiment_name).experiment_id


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
    """An MLflow run that ends FINISHED, FAILED on an error or KILLED on Ctrl-C; never RUNNING."""
    active = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name,
        tags=dict(tags),
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


def log_config(cfg: DictConfig, replaced: Mapping[str, Any]) -> None:
    """The resolved config, with the ``replaced`` top-level nodes (what this run's model really
    used, e.g. a teacher's seed), as flattened params and as a YAML artifact."""
    resolved = OmegaConf.to_container(cfg, resolve=True) | {
        key: OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
        for key, value in replaced.items()
    }
    params = {k: str(v)[:6000] for k, v in flatten(resolved).items()}
    mlflow.log_params(params)
    mlflow.log_text(OmegaConf.to_yaml(OmegaConf.create(resolved)), "config.yaml")


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


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary folder for files on their way into MLflow."""
    with tempfile.TemporaryDirectory(prefix="signdistill-") as d:
        yield Path(d)


def log_confusion(confusion: Any, classes: list[str]) -> None:
    """The test confusion matrix (a torchmetrics metric) as ``confusion_matrix.png``."""
    n = len(classes)
    fig, ax = confusion.plot(labels=classes if n <= 30 else None)
    fig.set_size_inches(max(6, n / 4), max(6, n / 4))
    ax.set_title("test confusion matrix")
    log_figure(fig, "confusion_matrix.png")


def log_pytorch_model(model: torch.nn.Module, example: np.ndarray) -> None:
    """The model via MLflow's PyTorch flavor, with an input example (and so a signature).

    ``example`` should hold two recordings: a batch of one would make the exported (pt2) model
    batch-1 only.
    """
    mlflow.pytorch.log_model(
        model.eval(),
        name="model",
        input_example=example,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "signdistill"],
    )
