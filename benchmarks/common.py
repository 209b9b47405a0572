"""Shared set-up for benchmark scripts: the project config and its DataModule, timing helpers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from signdistill.data.datamodule import SignDataModule

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
