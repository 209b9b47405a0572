"""MLflow records of a study: one parent run, trial runs as its children, Pareto tags, artifacts."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import optuna
from mlflow.entities import RunStatus, RunTag
from optuna.trial import FrozenTrial, TrialState

from signdistill.pareto import pareto_mask, plot_front, redact_url

log = logging.getLogger(__name__)

PARENT_ATTR = "mlflow_parent_run_id"
RUN_ATTR = "mlflow_run_ids"


def parent_run(study: optuna.Study, experiment_id: str, storage: str) -> str:
    """The study's MLflow parent run id, created on first use and kept in the study's attrs."""
    known = study.user_attrs.get(PARENT_ATTR)
    if known:
        mlflow.MlflowClient().update_run(known, status="RUNNING")
        return known
    run = mlflow.MlflowClient().create_run(
        experiment_id,
        run_name=f"study-{study.study_name}",
        tags={
            "optuna.study_name": study.study_name,
            "optuna.storage": redact_url(storage),
            "role": "study",
        },
    )
    study.set_user_attr(PARENT_ATTR, run.info.run_id)
    return run.info.run_id


def trial_runs(parent_id: str, trial_number: int) -> list[str]:
    """Ids of the child runs of one trial (one per repeat value), found by their tags."""
    client = mlflow.MlflowClient()
    experiment = client.get_run(parent_id).info.experiment_id
    runs = client.search_runs(
        [experiment],
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent_id}' and "
            f"tags.`optuna.trial_number` = '{trial_number}'"
        ),
    )
    return [r.info.run_id for r in runs]


def mark_trial(parent_id: str, trial: FrozenTrial) -> None:
    """Tag a finished trial's runs with its state; a failed trial's runs are marked FAILED."""
    client = mlflow.MlflowClient()
    for run_id in trial_runs(parent_id, trial.number):
        client.set_tag(run_id, "optuna.trial_state", trial.state.name)
        if trial.state == TrialState.FAIL:
            client.set_tag(run_id, "optuna.error", str(trial.user_attrs.get("error", ""))[:5000])
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))


def update_front(study: optuna.Study, parent_id: str, objectives: list[str]) -> None:
    """Re-tag every completed trial's runs ``pareto=true|false`` and refresh the parent's files."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return
    directions = [d.name.lower() for d in study.directions]
    values = np.array([t.values for t in done])
    front = pareto_mask(values, directions)
    client = mlflow.MlflowClient()
    for trial, on_front in zip(done, front, strict=True):
        for run_id in trial.user_attrs.get(RUN_ATTR, []):
            # Workers re-tag each other's runs: log_batch retries the insert that two workers
            # race on (set_tag raises a unique-key violation on PostgreSQL instead).
            client.log_batch(run_id, tags=[RunTag("pareto", str(on_front).lower())])
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "trials.csv"
        study.trials_dataframe().to_csv(csv, index=False)
        client.log_artifact(parent_id, str(csv))
        if len(objectives) >= 2:
            _log_front_plots(study, parent_id, values, front, objectives, Path(tmp))
    for i, key in enumerate(objectives):
        column = values[np.asarray(front)][:, i]
        best = column.max() if directions[i] == "maximize" else column.min()
        client.log_metric(parent_id, f"best_{key}", float(best))
    client.log_metric(parent_id, "pareto_size", float(sum(front)))
    client.log_metric(parent_id, "completed_trials", float(len(done)))


def _log_front_plots(
    study: optuna.Study,
    parent_id: str,
    values: np.ndarray,
    front: list[bool],
    objectives: list[str],
    tmp: Path,
) -> None:
    import matplotlib.pyplot as plt

    fig = plot_front(values, front, objectives, f"study {study.study_name}")
    png = tmp / "pareto_front.png"
    fig.savefig(png, dpi=120, bbox_inches="tight")
    plt.close(fig)
    client = mlflow.MlflowClient()
    client.log_artifact(parent_id, str(png))
    try:
        html = tmp / "pareto_front.html"
        optuna.visualization.plot_pareto_front(study, target_names=objectives).write_html(html)
        client.log_artifact(parent_id, str(html))
    except ImportError:  # plotly is optional: the PNG is always there
        log.info("plotly is not installed: no interactive Pareto plot")


def finish(parent_id: str) -> None:
    mlflow.MlflowClient().set_terminated(parent_id, RunStatus.to_string(RunStatus.FINISHED))
