"""Compose the project's Hydra config for a test: tiny data, few epochs, MLflow in tmp_path."""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow
import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"

TINY = [  # the recipes' epochs cut, their step floor off, their learning rates as stated (batch 8)
    "train.max_epochs=3",
    "teacher.train.max_epochs=3",
    "train.min_steps=0",
    "train.val_every_steps=1",
    "teacher.train.min_steps=0",
    "teacher.train.val_every_steps=1",
    "train.lr_batch_size=null",
    "teacher.train.lr_batch_size=null",
    "trainer.enable_progress_bar=false",
    "logger.log_model=false",
    "data.batch_size=8",
    "export.latency_runs=5",
]
SMALL_TEACHER = ("conv1=8", "conv2=8", "hidden=16")


def make_cfg(
    root: Path, *overrides: str, source: dict | None = None, small_teacher: bool = True
) -> DictConfig:
    """The project config rooted at ``root``, with a fake data source unless one is given; the
    Conv-LSTM models shrunk unless ``small_teacher`` is off (another model family)."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        if "model=teacher" in overrides:
            small = [
                f"{node}.{size}" for node in ("teacher.model", "model") for size in SMALL_TEACHER
            ]
        else:
            small = [f"teacher.model.{size}" for size in SMALL_TEACHER] + ["model.hidden=8"]
        if not small_teacher:  # another family: its own sizes
            small = []
        cfg = compose("config", overrides=[f"paths.root={root}", *TINY, *small, *overrides])
    OmegaConf.update(cfg, "data.source", source or {"_target_": "fakes.BlobSource"}, merge=False)
    return cfg


def runs(root: Path) -> pd.DataFrame:
    """Every MLflow run logged under ``root``."""
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlruns/mlflow.db")
    return mlflow.search_runs(experiment_names=["signdistill"])


ROOT = CONF.parent
# The default simulator, shrunk: 4 signs, 3 subjects, one sensor, half a second.
TINY_DATA = [
    "data.source.n_signs=4",
    "data.source.n_subjects=3",
    "data.source.n_repetitions=5",
    "data.source.n_sensors=1",
    "data.source.n_families=2",
    "data.source.duration_s=0.5",
]
TINY_TEACHER = ["teacher.model.conv1=4", "teacher.model.conv2=4", "teacher.model.hidden=8"]
# ... and a whole run on it takes seconds.
TINY_SIM = [
    *TINY_DATA,
    "train.max_epochs=2",
    "teacher.train.max_epochs=2",
    "train.min_steps=0",
    "train.val_every_steps=1",
    "teacher.train.min_steps=0",
    "teacher.train.val_every_steps=1",
    *TINY_TEACHER,
    "model.hidden=8",
    "logger.log_model=false",
    "export.latency_runs=2",
    "trainer.enable_progress_bar=false",
]


def train_command(root: Path, *overrides: str, script: str = "train.py") -> list[str]:
    """``python src/<script>`` rooted (MLflow, cache, teachers) at ``root``, tiny: with the tiny
    simulator unless the overrides choose other data."""
    other_data = any(o.startswith("data=") for o in overrides)
    tiny = [o for o in TINY_SIM if not (other_data and o.startswith("data.source."))]
    return [
        sys.executable,
        str(ROOT / "src" / script),
        f"paths.root={root}",
        f"hydra.run.dir={root}/outputs",
        *tiny,
        *overrides,
    ]
