"""MLflow records of a study: one parent run, trial runs as its children, Pareto tags, artifacts.

Imported only for a tracked study (the task config has ``logger.parent_run_id``): an app without
it never imports MLflow.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
from mlflow.entities import RunStatus, RunTag
from omegaconf import DictConfig
from optuna.trial import FrozenTrial, Trial, TrialState

from hydra_plugins.signdistill_sweeper import _front
from signdistill import tracking
from signdistill.pareto import front_html, hypervolume, pareto_mask, plot_front
from signdistill.urls import redact_url

log = logging.getLogger(__name__)

PARENT_ATTR = "mlflow_parent_run_id"
NOTE = "mlflow.note.content"  # a run's description in the MLflow UI (markdown)
RUN_ATTR = "mlflow_run_ids"
ERROR_TAG = "signdistill.error"  # why the study's run ended FAILED or KILLED


class StudyRuns:
    """The study's MLflow parent run, and its trials' runs found by their tags."""

    def __init__(
        self, parent_id: str, names: list[str], reference: list[float] | None = None
    ) -> None:
        self.parent_id = parent_id
        self.names = names  # objective names: metric and plot labels
        self.reference = reference  # the hypervolume's reference point, if it is logged
        self._experiment_id: str | None = None
        self._view_saved = False

    @classmethod
    def open(
        cls,
        logger: DictConfig,
        study: optuna.Study,
        storage: str | None,
        names: list[str],
        reference: list[float] | None = None,
    ) -> StudyRuns:
        """Point MLflow at the task's ``logger`` settings (MLflow's defaults for those absent)
        and open the study's parent run there."""
        experiment = tracking.configure(
            logger.get("tracking_uri") or mlflow.get_tracking_uri(),
            logger.get("experiment_name") or "Default",  # MLflow's own default experiment
            logger.get("artifact_root"),
        )
        return cls(parent_run(study, experiment, storage), names, reference)

    def trial_overrides(self, study_name: str, number: int) -> dict[str, Any]:
        """The task-config values that make a trial's run a tagged child of the parent run."""
        return {
            "logger.parent_run_id": self.parent_id,
            "logger.run_name": f"trial-{number}",
            "++logger.tags": {"optuna.trial_number": str(number), "optuna.study_name": study_name},
        }

    def record(self, trial: Trial) -> None:
        """Keep the ids of a trial's runs with it: workers re-tag each other's runs by them."""
        trial.set_user_attr(RUN_ATTR, self.run_ids(trial.number))

    def run_ids(self, trial_number: int) -> list[str]:
        """Ids of the child runs of one trial (one per repeat value), found by their tags."""
        client = mlflow.MlflowClient()
        experiment = client.get_run(self.parent_id).info.experiment_id
        runs = client.search_runs(
            [experiment],
            filter_string=(
                f"tags.mlflow.parentRunId = '{self.parent_id}' and "
                f"tags.`optuna.trial_number` = '{trial_number}'"
            ),
        )
        return [r.info.run_id for r in runs]

    def mark(self, trial: FrozenTrial) -> None:
        """Tag a finished trial's runs with its state; a failed trial's runs are marked FAILED."""
        client = mlflow.MlflowClient()
        for run_id in self.run_ids(trial.number):
            client.set_tag(run_id, "optuna.trial_state", trial.state.name)
            if trial.state == TrialState.FAIL:
                error = str(trial.user_attrs.get("error", ""))[:5000]
                client.set_tag(run_id, "optuna.error", error)
                if client.get_run(run_id).info.status == "RUNNING":
                    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))

    def update_front(self, study: optuna.Study) -> None:
        """Re-tag every completed trial's runs ``pareto=true|false``; refresh the parent's files,
        metrics and description (the front as a table), and save the study's view once."""
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
        plot = None
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "trials.csv"
            study.trials_dataframe().to_csv(csv, index=False)
            client.log_artifact(self.parent_id, str(csv))
            if len(self.names) >= 2:
                plot = self._log_front_plots(study, done, front, Path(tmp))
        volume = self._log_front_metrics(values, front, directions)
        self._describe(study, done, front, plot, volume)
        self._save_view(study, done)

    def _log_front_metrics(
        self, values: np.ndarray, front: list[bool], directions: list[str]
    ) -> float | None:
        """``best_<objective>`` over the front, its size, the trials done, the hypervolume (if a
        reference is set; returned)."""
        client = mlflow.MlflowClient()
        for i, key in enumerate(self.names):
            column = values[np.asarray(front)][:, i]
            best = column.max() if directions[i] == "maximize" else column.min()
            client.log_metric(self.parent_id, f"best_{key}", float(best))
        client.log_metric(self.parent_id, "pareto_size", float(sum(front)))
        client.log_metric(self.parent_id, "completed_trials", float(len(values)))
        if self.reference is None:
            return None
        volume = hypervolume(values, directions, self.reference)
        client.log_metric(self.parent_id, "hypervolume", volume, step=len(values))
        return volume

    def _log_front_plots(
        self, study: optuna.Study, done: list[FrozenTrial], front: list[bool], tmp: Path
    ) -> str:
        """The front as ``pareto_front.png`` (returned: the artifact's path) and, with plotly,
        ``pareto_interactive.html`` (the same axes, plotly.js from its CDN, a few kB)."""
        import matplotlib.pyplot as plt

        title = f"study {study.study_name}"
        values = np.array([t.values for t in done])
        fig = plot_front(values, front, self.names, title)
        png = tmp / "pareto_front.png"
        fig.savefig(png, dpi=120, bbox_inches="tight")
        plt.close(fig)
        client = mlflow.MlflowClient()
        client.log_artifact(self.parent_id, str(png))
        try:
            html = tmp / "pareto_interactive.html"
            labels = [f"trial {t.number}: {t.params}" for t in done]
            html.write_text(front_html(values, front, self.names, title, labels))
            client.log_artifact(self.parent_id, str(html))
        except ImportError:  # plotly is optional: the PNG is always there
            log.info("plotly is not installed: no interactive Pareto plot")
        return png.name

    def _describe(
        self,
        study: optuna.Study,
        done: list[FrozenTrial],
        front: list[bool],
        plot: str | None,
        volume: float | None,
    ) -> None:
        """The study run's description (``mlflow.note.content``, markdown in the UI)."""
        summary = _front.Study(
            study.study_name,
            self.names,
            [d.name.lower() for d in study.directions],
            len(done),
            self.experiment_id,
            self.parent_id,
            volume,
            self.reference,
        )
        on = [t for t, on_front in zip(done, front, strict=True) if on_front]
        runs = [t.user_attrs.get(RUN_ATTR, []) for t in on]
        trials = [
            _front.Trial(t.number, t.values, t.params, r, self._size(r))
            for t, r in zip(on, runs, strict=True)
        ]
        note = _front.description(summary, trials, plot)
        mlflow.MlflowClient().log_batch(self.parent_id, tags=[RunTag(NOTE, note)])

    def _size(self, runs: list[str]) -> float | None:
        """The deployed bytes of a trial's first run, when they are not an objective."""
        if _front.SIZE in self.names or not runs:
            return None
        return mlflow.MlflowClient().get_run(runs[0]).data.metrics.get(_front.SIZE)

    def _save_view(self, study: optuna.Study, done: list[FrozenTrial]) -> None:
        """The study's saved view in the UI's "Views" menu, unless the experiment has one (a
        user's changes to it are kept)."""
        if self._view_saved:
            return
        client = mlflow.MlflowClient()
        params = list(dict.fromkeys(k for t in done for k in t.params))
        key, value = _front.view_tag(study.study_name, self.names, params, int(time.time() * 1000))
        if key not in client.get_experiment(self.experiment_id).tags:
            try:
                client.set_experiment_tag(self.experiment_id, key, value)
            except mlflow.exceptions.MlflowException as e:  # another worker's, at the same time
                log.debug("view %s not saved: %s", key, e)
        self._view_saved = True

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            run = mlflow.MlflowClient().get_run(self.parent_id)
            self._experiment_id = run.info.experiment_id
        return self._experiment_id

    def finish(self) -> None:
        """End the study's run FINISHED, if this process owns it (see :func:`parent_run`)."""
        if self._owned():
            mlflow.MlflowClient().set_terminated(
                self.parent_id, RunStatus.to_string(RunStatus.FINISHED)
            )

    def end(self, error: BaseException) -> None:
        """End the study's run after the sweep stopped on ``error``: KILLED on Ctrl-C or SIGTERM
        (in a job too, which then exits), else FAILED; the error is its ``signdistill.error``."""
        if not self._owned():
            return
        killed = isinstance(error, KeyboardInterrupt | SystemExit)
        client = mlflow.MlflowClient()
        client.set_tag(self.parent_id, ERROR_TAG, f"{type(error).__name__}: {error}"[:5000])
        status = RunStatus.KILLED if killed else RunStatus.FAILED
        client.set_terminated(self.parent_id, RunStatus.to_string(status))

    def _owned(self) -> bool:
        """Whether this process owns the study's run; a worker that joined another's leaves its
        status to that one."""
        tags = mlflow.MlflowClient().get_run(self.parent_id).data.tags
        return all(tags.get(key) == value for key, value in tracking.owner_tags().items())


def parent_run(study: optuna.Study, experiment_id: str, storage: str | None) -> str:
    """The study's MLflow parent run id, created on first use and kept in the study's attrs.

    The run names its owner, this machine and process (``tracking.owner_tags``), so that a sweep
    killed outright (SIGKILL) leaves it to be marked FAILED by the next run here
    (``tracking.fail_stale_runs``). A resumed study's run is taken over by this process, unless
    another live process (a worker sharing the study) has it RUNNING: then this one joins it.
    """
    known = study.user_attrs.get(PARENT_ATTR)
    if known:
        _reopen(known)
        return known
    run = mlflow.MlflowClient().create_run(
        experiment_id,
        run_name=f"study-{study.study_name}",
        tags={
            "optuna.study_name": study.study_name,
            "optuna.storage": redact_url(storage) if storage else "in-memory",
            "role": "study",
            **tracking.owner_tags(),
        },
    )
    study.set_user_attr(PARENT_ATTR, run.info.run_id)
    return run.info.run_id


def _reopen(run_id: str) -> None:
    """Take the study's run over (RUNNING, owned by this process), or join it if another live
    process has it RUNNING."""
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    if run.info.status == "RUNNING" and tracking.owner_alive(run):
        owner = run.data.tags.get(tracking.PID_TAG)
        log.info("study run %s: RUNNING in process %s, which this sweep joins", run_id, owner)
        return
    for key, value in tracking.owner_tags(since=time.time()).items():
        client.set_tag(run_id, key, value)
    if ERROR_TAG in run.data.tags:  # why it ended last time: no longer true of a RUNNING run
        client.delete_tag(run_id, ERROR_TAG)
    client.update_run(run_id, status="RUNNING")
