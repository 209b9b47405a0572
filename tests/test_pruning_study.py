"""The pruning study end to end on tiny simulated data: every cell trained once, reported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline_helpers import TINY_DATA, TINY_TEACHER
from sweep_helpers import ROOT, environment

TINY = [
    "data=isl_sim",
    *TINY_DATA,
    "train.max_epochs=1",
    "teacher.train.max_epochs=2",
    "train.min_steps=0",
    "train.val_every_steps=1",
    "teacher.train.min_steps=0",
    "teacher.train.val_every_steps=1",
    *TINY_TEACHER,
    "model.conv1=4",
    "model.conv2=4",
    "model.hidden=8",
    "logger.log_model=false",
    "export.latency_runs=0",
]


@pytest.mark.slow
def test_pruning_study_trains_every_cell_and_reports_it(tmp_path):
    command = [
        sys.executable,
        str(ROOT / "studies" / "pruning_study.py"),
        "--splits",
        "0,1",
        "--out",
        str(tmp_path / "study"),
        f"paths.root={tmp_path}",
        f"logger.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        f"logger.artifact_root={tmp_path}/artifacts",
        "++prune.recover_epochs=1",
        *TINY,
    ]
    done = subprocess.run(
        command, cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "study" / "pruning.md").read_text()
    modes = ("| local |", "| uniform |", "| none |")
    rows = [line for line in report.splitlines() if line.startswith(modes)]
    assert len(rows) == 3 * 3 * 2 + 3  # every (sparsity, amount, recovery) cell, every sparse model
    assert report.count("| local - uniform |") == 3 * 2
    assert report.count("| KD - fine-tuning |") == 3 * 3
