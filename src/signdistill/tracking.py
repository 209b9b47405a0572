"""MLflow set-up and the few things every run logs (config, git commit, figures)."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
from filelock import FileLock
from mlflow.entities import RunStatus
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


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


def log_config(cfg: DictConfig) -> None:
    """The resolved config as flattened params and as a YAML artifact."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    params = {k: str(v)[:6000] for k, v in flatten(resolved).items()}
    mlflow.log_params(params)
    mlflow.log_text(OmegaConf.to_yaml(resolved), "config.yaml")


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
