"""The KD study script end to end: 2 splits, 1-epoch trainings, tiny simulated data."""

import json
import subprocess
import sys
from pathlib import Path

import mlflow

ROOT = Path(__file__).resolve().parents[1]


def study(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    overrides = [
        "data=isl_sim",
        "data.source.n_signs=4",
        "data.source.n_subjects=3",
        "data.source.n_repetitions=5",
        "data.source.n_sensors=1",
        "data.source.n_families=2",
        "data.source.duration_s=0.5",
        "model.max_epochs=1",
        "teacher.max_epochs=1",
        "teacher.conv1=4",
        "teacher.conv2=4",
        "teacher.hidden=8",
        "logger.log_model=false",
        "export.latency_runs=2",
        f"paths.cache={tmp_path}/cache",
        f"paths.teachers={tmp_path}/teachers",
        f"logger.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        f"logger.artifact_root={tmp_path}/artifacts",
    ]
    cmd = [sys.executable, "benchmarks/kd_study.py", "--out", str(tmp_path / "study"), *args]
    return subprocess.run(
        [*cmd, *overrides], cwd=ROOT, capture_output=True, text=True, timeout=600, check=True
    )


def test_study_reports_paired_statistics_and_resumes_without_retraining(tmp_path):
    recipes = ["--recipes", "scratch,kd,kd_ensemble,scratch_patient"]
    first = study(tmp_path, "--splits", "2", *recipes)
    table = (tmp_path / "study" / "table.md").read_text()
    assert table in first.stdout
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()[4:]}
    assert set(rows) == {
        "teacher (seed 0, the students' teacher)",
        "teacher, seed 1",
        "teacher ensemble (seeds 0, 1)",
        "teacher, early-stopping recipe",
        "scratch",
        "kd",
        "kd_ensemble",
        "scratch_patient",
    }
    # paired tests against both scratch recipes of its size and against the teacher
    assert rows["kd"].count("p=") == 3
    assert rows["scratch"].count("p=") == 2  # against scratch_patient and the teacher
    assert (tmp_path / "study" / "paired_differences.png").stat().st_size > 0
    lines = (tmp_path / "study" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2 * (3 + 4)  # per split: three teachers, four recipes
    assert {json.loads(line)["method"] for line in lines} >= {"teacher_early", "kd_ensemble"}

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["signdistill"])
    parent = runs[runs["tags.mlflow.runName"] == "kd-study"]
    assert parent["status"].tolist() == ["FINISHED"]
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"].item()]
    assert sorted(children["tags.recipe"]) == sorted(recipes[1].split(",") * 2)

    # everything done: nothing is trained again; any two methods can be compared, paired
    again = study(tmp_path, "--splits", "2", *recipes, "--compare", "kd:scratch")
    vs_scratch = rows["kd"].split(" | ")[4]
    assert f"kd - scratch: {vs_scratch}" in again.stdout
    assert len(mlflow.search_runs(experiment_names=["signdistill"])) == len(runs)
