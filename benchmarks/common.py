"""Shared set-up for benchmark scripts: the project config and its DataModule, timing helpers."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from signdistill import tracking
from signdistill.data.datamodule import SignDataModule
from signdistill.pipeline import Trained, obtain_teacher

ROOT = Path(__file__).resolve().parents[1]


def config(*overrides: str) -> DictConfig:
    """The project's Hydra config (rooted at the checkout) with ``overrides``."""
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"paths.root={ROOT}", *overrides])


def datamodule(cfg: DictConfig) -> SignDataModule:
    dm = instantiate(cfg.data)
    dm.prepare()
    return dm


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def lis_root() -> str:
    root = os.environ.get("SIGNDISTILL_LIS_ROOT", str(ROOT.parent / "shared/datasets/lis-emg-imu"))
    if not Path(root).is_dir():
        raise SystemExit(f"no LIS copy at {root}: set SIGNDISTILL_LIS_ROOT")
    return root


def stored_teacher(cfg: DictConfig) -> Trained:
    """The teacher the students of this split distill from (trained once, then reused)."""
    dm = instantiate(cfg.data)
    dm.prepare()
    experiment = tracking.configure(
        cfg.logger.tracking_uri, cfg.logger.experiment_name, cfg.logger.artifact_root
    )
    return obtain_teacher(cfg, dm, experiment, model_node="teacher", retrain=False)


def mean_std(values: list[float]) -> str:
    """'mean +/- std' of fractions, in percent (sample std over splits)."""
    return f"{100 * np.mean(values):.1f} +/- {100 * np.std(values, ddof=1):.1f}"
