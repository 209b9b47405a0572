"""Several workers on one study in a real PostgreSQL server (started here on 127.0.0.1)."""

from __future__ import annotations

import signal
import subprocess
import time

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from servers import postgres
from sweep_helpers import (
    STUDY,
    child_runs,
    environment,
    run_side_by_side,
    study,
    sweep,
    sweep_command,
)

pytestmark = pytest.mark.slow


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_concurrent_workers_share_one_study_and_one_teacher(tmp_path):
    with postgres("optuna", "mlflow") as url:
        storage, tracking = url.format(db="optuna"), url.format(db="mlflow")
        shared = [f"hydra.sweeper.storage={storage}", f"logger.tracking_uri={tracking}"]
        _ok(sweep(tmp_path, *shared, "hydra.sweeper.n_trials=0"))  # create study + parent once
        command = sweep_command(tmp_path, *shared, "hydra.sweeper.n_trials=3")
        run_side_by_side([command, command], tmp_path, environment(), timeout=600)

        trials = study(tmp_path, storage).trials
        assert sorted(t.number for t in trials) == list(range(6))  # unique, nothing lost
        assert all(t.state == TrialState.COMPLETE for t in trials)
        children, parents = child_runs(tmp_path, tracking)
        assert len(parents) == 1 and len(children) == 6
        assert sorted(children["tags.optuna.trial_number"].astype(int)) == list(range(6))
        runs = mlflow.search_runs(experiment_names=["signdistill"])
        assert (runs["tags.kind"] == "teacher").sum() == 1  # trained once for both workers


def _wait_for_running_trial(storage: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name=STUDY, storage=storage).trials
        except KeyError:
            trials = []
        if any(t.state == TrialState.RUNNING for t in trials):
            return
        time.sleep(0.5)
    raise AssertionError("no trial started running")


def test_a_killed_worker_leaves_no_running_trial_and_loses_nothing(tmp_path):
    with postgres("optuna") as url:
        storage = url.format(db="optuna")
        beat = [
            f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.heartbeat_interval=1",
            "hydra.sweeper.grace_period=3",
        ]
        _ok(sweep(tmp_path, *beat, "hydra.sweeper.n_trials=1"))  # trial 0 completes
        doomed = subprocess.Popen(
            sweep_command(
                tmp_path,
                *beat,
                "hydra.sweeper.n_trials=1",
                "train.max_epochs=1000",
            ),
            cwd=tmp_path,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_running_trial(storage, deadline_s=120)
        time.sleep(3)  # well inside training
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        time.sleep(5)  # past the grace period: its heartbeat is stale

        _ok(sweep(tmp_path, *beat, "hydra.sweeper.n_trials=1"))  # recovers, then runs trial 2
        states = {t.number: t.state for t in study(tmp_path, storage).trials}
        assert states == {0: TrialState.COMPLETE, 1: TrialState.FAIL, 2: TrialState.COMPLETE}
        children, _ = child_runs(tmp_path)
        status = dict(zip(children["tags.optuna.trial_number"], children["status"], strict=True))
        assert status == {"0": "FINISHED", "1": "FAILED", "2": "FINISHED"}
