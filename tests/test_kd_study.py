"""The KD study end to end: 2 splits, 1-epoch trainings, tiny simulated data."""

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from pipeline_helpers import TINY_DATA, TINY_TEACHER

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["scratch", "kd", "kd_ensemble", "scratch_patient"]
# The table the pre-redesign (in-process) study script printed for the same command and data.
BEFORE = Path(__file__).parent / "data" / "kd_study_table_before.md"


def study(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    overrides = [
        "data=isl_sim",
        *TINY_DATA,
        "train.max_epochs=1",
        "teacher.train.max_epochs=1",
        "train.min_steps=0",
        "train.val_every_steps=1",
        "teacher.train.min_steps=0",
        "teacher.train.val_every_steps=1",
        *TINY_TEACHER,
        "logger.log_model=false",
        "export.latency_runs=2",
        f"paths.cache={tmp_path}/cache",
        f"paths.teachers={tmp_path}/teachers",
        f"logger.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        f"logger.artifact_root={tmp_path}/artifacts",
    ]
    cmd = [sys.executable, "studies/kd_study.py", "--out", str(tmp_path / "study"), *args]
    done = subprocess.run([*cmd, *overrides], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def all_runs(tmp_path: Path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    return mlflow.search_runs(experiment_names=["signdistill"])


@pytest.mark.slow
def test_study_reports_paired_statistics_and_resumes_without_retraining(tmp_path):
    first = study(tmp_path, "--splits", "2", "--recipes", ",".join(RECIPES))
    table = (tmp_path / "study" / "table.md").read_text()
    assert table in first.stdout
    assert table == BEFORE.read_text()  # the same runs, the same numbers as before the redesign
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()[4:]}
    assert set(rows) == {
        "teacher (seed 0, the students' teacher)",
        "teacher, seed 1",
        "teacher ensemble (seeds 0, 1)",
        "teacher, early-stopping recipe",
        *RECIPES,
    }
    # paired tests against both scratch recipes of its size and against the teacher
    assert rows["kd"].count("p=") == 3
    assert rows["scratch"].count("p=") == 2  # against scratch_patient and the teacher
    assert (tmp_path / "study" / "paired_differences.png").stat().st_size > 0

    runs = all_runs(tmp_path)
    parent = runs[runs["tags.role"] == "study"]
    assert parent["status"].tolist() == ["FINISHED"]
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"].item()]
    # per split: the three teachers and the four recipes, each tagged with the study and recipe
    methods = ["teacher", "teacher_early", "teacher_seed1", *RECIPES]
    assert sorted(children["tags.recipe"]) == sorted(methods * 2)
    assert set(children["tags.study"]) == {"kd_isl_sim"}
    assert set(children["status"]) == {"FINISHED"}
    # the students found their split's teacher stored: no teacher was trained on the side
    assert len(runs) == len(children) + 1

    # everything done: nothing is trained again; any two methods can be compared, paired
    again = study(
        tmp_path, "--splits", "2", "--recipes", ",".join(RECIPES), "--compare", "kd:scratch"
    )
    vs_scratch = rows["kd"].split(" | ")[4]
    assert f"kd - scratch: {vs_scratch}" in again.stdout
    assert len(all_runs(tmp_path)) == len(runs)


@pytest.mark.slow
def test_an_interrupted_study_launches_only_what_is_missing(tmp_path):
    study(tmp_path, "--splits", "1", "--recipes", "scratch")
    before = all_runs(tmp_path)
    study(tmp_path, "--splits", "1", "--recipes", "scratch,kd")
    after = all_runs(tmp_path)
    new = after[~after["run_id"].isin(before["run_id"])]
    assert new["tags.recipe"].tolist() == ["kd"]
