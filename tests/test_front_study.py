"""The front study end to end on tiny simulated data: a small shape search, then its screening front
retrained on held-out splits with the reference models, reported and plotted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest

from signdistill.pareto import pareto_mask
from signdistill.stats import Interval

from pipeline_helpers import TINY_DATA, TINY_TEACHER
from sweep_helpers import ROOT, environment

TINY = [
    *TINY_DATA,
    "train.max_epochs=1",
    "teacher.train.max_epochs=1",
    "train.min_steps=0",
    "train.val_every_steps=1",
    "teacher.train.min_steps=0",
    "teacher.train.val_every_steps=1",
    *TINY_TEACHER,
    "logger.log_model=false",
    "export.latency_runs=0",
]


def run(command: list[str], root: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        command, cwd=root, env=environment(), capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_front_study_retrains_exactly_the_screening_front_and_reports_it(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    where = [
        f"paths.root={tmp_path}",
        f"logger.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        f"logger.artifact_root={tmp_path}/artifacts",
    ]
    search = [
        sys.executable,
        str(ROOT / "src" / "train.py"),
        "-m",
        "+sweeps=student_shape_pareto",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.repeat_values=[0,1]",
        f"hydra.sweep.dir={tmp_path}/search",
        "trainer.enable_progress_bar=false",
        *where,
        *TINY,
    ]
    run(search, tmp_path)
    study = optuna.load_study(study_name="student_shape_pareto_isl_sim_teacher", storage=storage)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    on_front = pareto_mask([t.values for t in trials], ["maximize", "minimize"])
    front = {f"trial-{t.number}" for t, on in zip(trials, on_front, strict=True) if on}

    report = [
        sys.executable,
        str(ROOT / "studies" / "front_study.py"),
        "--splits",
        "7,8",
        "--shapes",
        "3",
        "--storage",
        storage,
        "--out",
        str(tmp_path / "front"),
        "--prune-amounts",
        "0.5",
        "--pruned",
        "prune.recover_epochs=1",
        "data=isl_sim",
        *where,
        *TINY,
    ]
    first = run(report, tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["signdistill"])
    mine = runs[(runs["tags.study"] == "front_isl_sim") & (runs["tags.role"] != "study")]
    retrained = set(mine["tags.method"]) - {
        "teacher",
        "seed_student",
        "student_tiny",
        "pruned_teacher_0.5",
    }
    kinds = {
        m: set(mine.loc[mine["tags.method"] == m, "params.data.split_seed"]) for m in retrained
    }
    assert front <= retrained  # every screening-front trial, and rank-check trials up to 3 shapes
    assert len(retrained) >= min(3, len(trials))
    assert all(splits == {"7", "8"} for splits in kinds.values())  # held-out splits only
    students = mine[mine["tags.method"].isin(retrained)]
    # the full recipe (augmented, consistent KD), not the screening one (clean, cached logits)
    assert set(students["params.train.augment.mixup"]) == {"0.4"}
    assert set(students["tags.teacher_logits"]) == {"online"}
    table = (tmp_path / "front" / "front.md").read_text()
    assert table in first.stdout and "Spearman" in table
    for label in ("teacher (fp32 ONNX)", "teacher (int8)", "seed_student", "student_tiny"):
        assert f"| {label} |" in table
    assert (tmp_path / "front" / "front.png").stat().st_size > 0

    again = run(report, tmp_path)  # resumed: nothing trained again
    assert len(mlflow.search_runs(experiment_names=["signdistill"])) == len(runs)
    assert table in again.stdout

    dropped = sorted(retrained)[0]  # one model loses a split: a study still under way
    lost = mine[(mine["tags.method"] == dropped) & (mine["params.data.split_seed"] == "8")]
    for run_id in lost["run_id"]:
        mlflow.MlflowClient().delete_run(run_id)
    partial = run([*report, "--partial"], tmp_path)
    assert len(mlflow.search_runs(experiment_names=["signdistill"])) == len(runs) - len(lost)
    assert f"| {dropped} |" not in partial.stdout  # reported: the models finished on every split
    assert "| student_tiny |" in partial.stdout


@pytest.mark.slow
def test_a_front_per_teacher_the_named_teacher_teaches_every_student(tmp_path):
    """``model@teacher.model=inception``: the study trains that teacher, its students learn from
    it, and the study is named for it (a front per teacher); a given shape without a search."""
    teacher = [
        "model@teacher.model=inception",
        "teacher.model.depth=3",
        "teacher.model.filters=4",
        "teacher.model.bottleneck=4",
        "teacher.model.kernel_sizes=[9,5,3]",
    ]
    shape = "tiny4=model.conv1=4 model.conv2=4 model.hidden=6 model.lstm_layers=1"
    tiny = [o for o in TINY if not o.startswith("teacher.model.")]
    report = [
        sys.executable,
        str(ROOT / "studies" / "front_study.py"),
        "--no-search",
        "--splits",
        "7",
        "--prune-amounts",
        "",  # the InceptionTime family is not pruned
        "--shape",
        shape,
        "--out",
        str(tmp_path / "front"),
        "data=isl_sim",
        f"paths.root={tmp_path}",
        *tiny,
        *teacher,
    ]
    done = run(report, tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["signdistill"])
    mine = runs[(runs["tags.study"] == "front_isl_sim_inception") & (runs["tags.role"] != "study")]
    by_method = mine.set_index("tags.method")
    assert by_method.loc["teacher", "tags.kind"] == "inception"
    for student in ("seed_student", "student_tiny", "tiny4"):
        assert by_method.loc[student, "tags.teacher_run_id"] == by_method.loc["teacher", "run_id"]
    assert "| tiny4 |" in done.stdout and "No search study" in done.stdout


def test_targets_name_the_smallest_model_within_a_point_and_what_dominates_the_seed(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "studies"))
    from front_study import _targets

    def row(label: str, kind: str, size: int, acc: float, diff: float) -> dict:
        return {
            "label": label,
            "kind": kind,
            "bytes": size,
            "acc": Interval(acc, acc, acc, 5),
            "diff": diff,
        }

    rows = [
        row("teacher (fp32 ONNX)", "teacher", 600_000, 0.90, 0.0),
        row("teacher (int8)", "teacher", 160_000, 0.90, 0.0),
        row("seed_student", "reference", 40_000, 0.86, -0.04),
        row("pruned", "reference", 19_000, 0.895, -0.005),
        row("trial-1", "front", 12_000, 0.885, -0.015),  # dominates the seed, but 1.5 points off
        row("trial-2", "front", 30_000, 0.892, -0.008),
        row("trial-3", "rank-check", 50_000, 0.95, 0.05),  # larger than the seed student
    ]
    lines = _targets(rows)
    assert "(any path)" in lines[0]
    assert "pruned, 19,000 bytes, -0.5" in lines[0]
    assert "(retrained search trials only)" in lines[1]
    assert "trial-2, 30,000 bytes, -0.8" in lines[1]
    assert lines[2].endswith(": 2, the smallest trial-1.")
    rows = [r | {"diff": -0.02} if r["kind"] != "teacher" else r for r in rows[:3]]
    assert _targets(rows)[1].endswith("difference): none.")
