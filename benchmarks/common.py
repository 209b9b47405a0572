"""Shared set-up for benchmark and study scripts: the project config, its DataModule, the stored
teacher, timing helpers, and :class:`Study`, a named set of runs launched as Hydra multiruns."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from filelock import FileLock
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from signdistill import teachers, tracking
from signdistill.data.datamodule import SignDataModule
from signdistill.jobs import Trained
from signdistill.pipeline import context, train_job
from signdistill.stats import Interval, paired

ROOT = Path(__file__).resolve().parents[1]


def config(*overrides: str) -> DictConfig:
    """The project's Hydra config (rooted at the checkout) with ``overrides``."""
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"paths.root={ROOT}", *overrides])


def datamodule(cfg: DictConfig) -> SignDataModule:
    dm = instantiate(cfg.data)
    dm.prepare()
    return dm


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    """``fn`` as a side for :func:`interleave`: each call returns its wall time in seconds."""

    def side() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return side


def interleave(
    sides: Mapping[str, Callable[[], float]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Measure every side once per round for ``repeats`` rounds (after ``warmup`` untimed rounds).

    Each side is a callable returning the seconds it measured. Sides alternate within a round,
    and every other round runs them in reverse order (A, B, B, A, ...), so a neighbour's load or
    a slow drift of the machine lands on all sides alike instead of on whichever ran second.
    """
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            seconds = sides[name]()
            if round_ >= warmup:
                times[name].append(seconds)
    return times


@dataclass(frozen=True)
class Ratio:
    """The median of per-round ratios between two interleaved sides, and their range."""

    median: float
    low: float
    high: float
    repeats: int

    def __str__(self) -> str:
        return (
            f"{self.median:.2f}x [{self.low:.2f}, {self.high:.2f}] "
            f"(median [min, max] over {self.repeats} interleaved repeats)"
        )


def ratio(times: Mapping[str, Sequence[float]], numerator: str, denominator: str) -> Ratio:
    """``numerator`` / ``denominator`` round by round: each round's two measurements ran next to
    each other, so their ratio is what is comparable on a noisy machine, not the totals."""
    pairs = [a / b for a, b in zip(times[numerator], times[denominator], strict=True)]
    return Ratio(statistics.median(pairs), min(pairs), max(pairs), len(pairs))


def median_ms(times: Mapping[str, Sequence[float]], side: str) -> float:
    """The median of one side's measurements, in milliseconds."""
    return 1e3 * statistics.median(times[side])


def lis_root() -> str:
    root = os.environ.get("SIGNDISTILL_LIS_ROOT", str(ROOT.parent / "shared/datasets/lis-emg-imu"))
    if not Path(root).is_dir():
        raise SystemExit(f"no LIS copy at {root}: set SIGNDISTILL_LIS_ROOT")
    return root


def stored_teacher(cfg: DictConfig) -> Trained:
    """The teacher the students of this split distill from (trained once, then reused)."""
    return teachers.for_student(context(cfg), train_job)


def pct(ci: Interval) -> str:
    """A mean of fractions with its interval, in percent: ``84.7 [82.0, 87.3]``."""
    return f"{100 * ci.mean:.1f} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def paired_text(a: np.ndarray, b: np.ndarray) -> str:
    """The paired difference a - b in points: mean [95 % interval], Wilcoxon p, wins/ties."""
    p = paired(a, b)
    d = p.diff
    return (
        f"{100 * d.mean:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}], "
        f"p={p.p_value:.3f}, {p.wins}/{p.ties}"
    )


def teacher_overrides(overrides: Sequence[str]) -> list[str]:
    """A study's overrides for a run whose own model is the teacher: its ``teacher.model.*``
    and ``teacher.train.*`` also set the run's ``model.*`` and ``train.*`` (the students' are
    dropped), so it trains and stores exactly the teacher the study's students look up."""
    own = [o for o in overrides if not o.startswith(("model.", "train."))]
    mapped = [o.removeprefix("teacher.") for o in overrides if o.startswith(TEACHER_NODES)]
    return own + mapped


TEACHER_NODES = ("teacher.model.", "teacher.train.")


class Study:
    """A named set of runs: each a pipeline run launched by Hydra multirun, tagged ``study=<name>``
    and nested under the study's MLflow parent run, and read back from MLflow for analysis.

    MLflow is the record: launching again starts only what has no FINISHED run yet, so an
    interrupted study loses at most the runs in progress, and shards (one process per core) can
    share one study.
    """

    def __init__(self, name: str, overrides: Sequence[str]) -> None:
        self.name = name
        self.overrides = list(overrides)
        cfg = config(*overrides)
        self.settings: tracking.TrackingSettings = instantiate(cfg.logger)
        self.experiment = tracking.configure(
            self.settings.tracking_uri, self.settings.experiment_name, self.settings.artifact_root
        )
        self.client = mlflow.MlflowClient(self.settings.tracking_uri)
        self.parent = self._parent_run(Path(cfg.paths.cache))

    def _parent_run(self, lock_dir: Path) -> str:
        """The study's MLflow run, found by its tags or created once (the lock keeps shards
        started together from creating one each)."""
        lock_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_dir / f"study-{self.name}.lock")):
            found = self.client.search_runs(
                [self.experiment],
                f"tags.role = 'study' and tags.study = '{self.name}'",
                max_results=1,
            )
            if found:
                self.client.update_run(found[0].info.run_id, status="RUNNING")
                return found[0].info.run_id
            run = self.client.create_run(
                self.experiment, run_name=self.name, tags={"role": "study", "study": self.name}
            )
            return run.info.run_id

    def runs(self) -> pd.DataFrame:
        """Every FINISHED run of the study: ``params.*``, ``metrics.*`` and ``tags.*`` columns."""
        mlflow.set_tracking_uri(self.settings.tracking_uri)
        runs = mlflow.search_runs(
            [self.experiment],
            f"tags.study = '{self.name}' and attributes.status = 'FINISHED'",
        )
        return runs[runs["tags.role"] != "study"] if len(runs) else runs

    def launch(
        self,
        sweep: Sequence[str],
        out: Path,
        as_teacher: bool = False,
        tags: dict[str, str] | None = None,
    ) -> None:
        """One Hydra multirun of ``src/train.py`` over ``sweep`` (e.g. ``+recipe=a,b``), every
        job with the study's overrides (:func:`teacher_overrides` of them ``as_teacher``), nested
        under the study's parent run and tagged with its name (and ``tags``)."""
        overrides = teacher_overrides(self.overrides) if as_teacher else self.overrides
        tags = {"study": self.name, **(tags or {})}
        command = [
            sys.executable,
            str(ROOT / "src" / "train.py"),
            "-m",
            *overrides,
            *sweep,
            f"logger.parent_run_id={self.parent}",
            "++logger.tags={" + ",".join(f"{k}:'{v}'" for k, v in tags.items()) + "}",
            "trainer.enable_progress_bar=false",
            f"hydra.sweep.dir={out}/multirun/{time.strftime('%Y%m%d-%H%M%S')}",
        ]
        subprocess.run(command, cwd=ROOT, check=True)

    def finish(self) -> None:
        self.client.set_terminated(self.parent, "FINISHED")
