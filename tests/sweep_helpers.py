"""Run the project's sweeps in a subprocess, rooted in a temporary folder, and read the results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna

from hydra_plugins.signdistill_sweeper._storage import open_storage

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "data.source.n_signs=4",
    "data.source.n_subjects=3",
    "data.source.n_repetitions=5",
    "data.source.n_families=2",
    "train.max_epochs=1",
    "teacher.train.max_epochs=1",
    "train.min_steps=0",
    "train.val_every_steps=1",
    "teacher.train.min_steps=0",
    "teacher.train.val_every_steps=1",
    "teacher.model.conv1=4",
    "teacher.model.conv2=4",
    "teacher.model.hidden=8",
    "trainer.enable_progress_bar=false",
    "logger.log_model=false",
]
STUDY = "student_pareto_isl_sim"


def sweep_command(root: Path, *overrides: str, name: str = "student_pareto") -> list[str]:
    """`python src/train.py -m +sweeps=<name> ...` from the checkout, rooted at ``root``."""
    return [
        sys.executable,
        str(ROOT / "src" / "train.py"),
        "-m",
        f"+sweeps={name}",
        f"paths.root={root}",
        f"hydra.sweep.dir={root}/multirun/${{now:%H-%M-%S-%f}}",
        *TINY,
        *overrides,
    ]


def environment() -> dict[str, str]:
    """This process's environment with this checkout's sources first on the path: a sweep's
    subprocesses (and the launchers' workers they start) run the checkout under test."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def sweep(root: Path, *overrides: str, name: str = "student_pareto") -> subprocess.CompletedProcess:
    return subprocess.run(
        sweep_command(root, *overrides, name=name),
        cwd=root,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def study(root: Path, storage: str | None = None, name: str = STUDY) -> optuna.Study:
    """The study as the sweeper stored it: a database URL or a journal file (journal://...)."""
    storage = storage or f"sqlite:///{root}/mlruns/optuna.db"
    return optuna.load_study(study_name=name, storage=open_storage(storage))


def child_runs(root: Path, tracking_uri: str | None = None):
    """(trial runs, study parent runs) as DataFrames."""
    mlflow.set_tracking_uri(tracking_uri or f"sqlite:///{root}/mlruns/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["signdistill"])
    return runs[runs["tags.mlflow.parentRunId"].notna()], runs[runs["tags.role"] == "study"]


def run_side_by_side(commands: list[list[str]], cwd: Path, env: dict, timeout: float) -> None:
    """Start every command at once (workers of one study) and wait; each must exit 0."""
    workers = [
        subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for command in commands
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=timeout)
        assert worker.returncode == 0, err[-3000:]
