"""Shared set-up for the study scripts: :class:`Study`, a named set of runs launched as Hydra
multiruns and read back from MLflow, and how their results are printed (means with intervals,
paired differences)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from filelock import FileLock
from hydra.utils import instantiate

from signdistill import tracking
from signdistill.config import load_config
from signdistill.stats import Interval, paired

ROOT = Path(__file__).resolve().parents[1]


def lis_root() -> str:
    root = os.environ.get("SIGNDISTILL_LIS_ROOT", str(ROOT.parent / "shared/datasets/lis-emg-imu"))
    if not Path(root).is_dir():
        raise SystemExit(f"no LIS copy at {root}: set SIGNDISTILL_LIS_ROOT")
    return root


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
    """A study's overrides for a run whose own model is the teacher: its ``teacher.model.*`` and
    ``teacher.train.*`` (and a teacher named by group, ``model@teacher.model=inception``) also set
    the run's ``model.*`` and ``train.*`` (the students' are dropped), so it trains and stores
    exactly the teacher the study's students look up."""
    own = [o for o in overrides if not o.startswith(("model.", "train.", "model=", "train="))]
    mapped = [
        o.removeprefix("teacher.").replace("@teacher.model", "").replace("@teacher.train", "")
        for o in overrides
        if o.startswith(TEACHER_NODES)
    ]
    return own + mapped


TEACHER_NODES = ("teacher.model.", "teacher.train.", "model@teacher.model=", "train@teacher.train=")


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
        cfg = load_config(f"paths.root={ROOT}", *overrides)
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
        under the study's parent run and tagged with its name (and ``tags``). One torch thread
        per run (``threads=1``, unless the study's overrides say otherwise): a study's parallelism
        is one process per core (``--shard``)."""
        overrides = teacher_overrides(self.overrides) if as_teacher else self.overrides
        tags = {"study": self.name, **(tags or {})}
        command = [
            sys.executable,
            str(ROOT / "src" / "train.py"),
            "-m",
            "threads=1",
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
