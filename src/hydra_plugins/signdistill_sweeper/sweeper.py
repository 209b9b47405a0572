"""The Optuna sweeper: ask Optuna for trials, launch them as Hydra jobs, tell it the results.

Uses Optuna's public ask/tell API. Each trial's job is the project's task function, which logs an
MLflow run as a child of the study's parent run (via the ``sweep.*`` overrides) and returns its
metrics; the objectives are read from them by name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, Trial, TrialState

from hydra_plugins.signdistill_sweeper import study_tracking
from hydra_plugins.signdistill_sweeper.space import override_value, search_space
from signdistill import tracking
from signdistill.pareto import redact_url

log = logging.getLogger(__name__)


class SweepFailedError(RuntimeError):
    """More trials failed than ``max_failures`` allows."""


class OptunaSweeper(Sweeper):
    """See :class:`hydra_plugins.signdistill_sweeper.config.OptunaSweeperConf` for the settings."""

    def __init__(self, **settings: Any) -> None:
        self.settings = OmegaConf.create(settings)
        self.job_idx = 0

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        # Hydra sets this only per job; the task config read here (logger.tracking_uri via
        # paths.root: ${hydra:runtime.cwd}) needs it to resolve before any job runs.
        HydraConfig.instance().set_config(config)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        s = self.settings
        if len(s.objectives) != len(s.directions):
            raise ValueError("hydra.sweeper.objectives and .directions must have equal lengths")
        space, fixed = search_space(OmegaConf.to_container(s.params), arguments)
        study = self._study()
        experiment = tracking.configure(
            self.config.logger.tracking_uri,
            self.config.logger.experiment_name,
            self.config.logger.artifact_root,
        )
        parent = study_tracking.parent_run(study, experiment, s.storage)
        log.info(
            "Study %s (%d trials so far) in %s; MLflow parent run %s",
            study.study_name,
            len(study.trials),
            redact_url(s.storage),
            parent,
        )
        failures, launched = 0, 0
        while launched < s.n_trials:
            optuna.storages.fail_stale_trials(study)
            trials = [study.ask(space) for _ in range(min(s.n_jobs, s.n_trials - launched))]
            launched += len(trials)
            with self._heartbeat(study, trials):
                returns = self._launch(study, trials, fixed, parent)
            for trial, rets in zip(trials, returns, strict=True):
                frozen = self._tell(study, trial, rets)
                study_tracking.mark_trial(parent, frozen)
                failures += frozen.state == TrialState.FAIL
            study_tracking.update_front(study, parent, list(s.objectives))
            if failures > s.max_failures:
                raise SweepFailedError(
                    f"{failures} trials failed (hydra.sweeper.max_failures={s.max_failures}); "
                    "see the trials' 'error' attribute or their MLflow runs"
                )
        study_tracking.finish(parent)

    def _study(self) -> optuna.Study:
        s = self.settings
        storage: Any = s.storage
        tracking.ensure_sqlite_folder(s.storage)
        if s.storage.startswith(("sqlite", "postgresql", "mysql")):
            storage = RDBStorage(
                s.storage,
                heartbeat_interval=s.heartbeat_interval,
                grace_period=s.grace_period,
                heartbeat_stale_trial_callback=StaleTrialHandler(s.max_retry),
            )
        existing = _existing_trials(storage, s.study_name)
        return optuna.create_study(
            study_name=s.study_name,
            storage=storage,
            directions=list(s.directions),
            sampler=_sampler(s.sampler, existing),
            pruner=instantiate(s.pruner) if s.pruner else None,
            load_if_exists=True,
        )

    def _launch(
        self, study: optuna.Study, trials: list[Trial], fixed: list[str], parent: str
    ) -> list[list[JobReturn]]:
        """One job per trial and repeat value; returns each trial's job results."""
        s = self.settings
        repeats = list(s.repeat_values) or [None]
        # Repeats of one trial would report the same epochs to it: their curves cannot be pruned
        prunable = len(s.objectives) == 1 and s.pruner is not None and len(repeats) == 1
        batch = []
        for trial in trials:
            sweep = {
                "sweep.study_name": study.study_name,
                "sweep.storage": s.storage,
                "sweep.trial_id": trial._trial_id,  # Optuna has no public accessor for it
                "sweep.trial_number": trial.number,
                "sweep.parent_run_id": parent,
                "sweep.trial_pruning": prunable,
            }
            params = [f"{k}={override_value(v)}" for k, v in trial.params.items()]
            sweep_overrides = [f"{k}={override_value(v)}" for k, v in sweep.items()]
            if prunable:
                # Optuna does not store a study's pruner: the job rebuilds it (job.job_trial)
                pruner = OmegaConf.to_container(s.pruner, resolve=True)
                sweep_overrides.append(f"++sweep.pruner={override_value(pruner)}")
            for value in repeats:
                repeat = [] if value is None else [f"{s.repeat_key}={override_value(value)}"]
                batch.append([*fixed, *params, *repeat, *sweep_overrides])
        results = self.launcher.launch(batch, initial_job_idx=self.job_idx)
        self.job_idx += len(results)
        n = len(repeats)
        return [list(results[i * n : (i + 1) * n]) for i in range(len(trials))]

    def _tell(self, study: optuna.Study, trial: Trial, rets: Sequence[JobReturn]) -> FrozenTrial:
        """Record a trial's outcome: its objectives averaged over repeats, or why it failed."""
        s = self.settings
        # a failed JobReturn re-raises its exception from .return_value; _return_value holds it
        errors = [r._return_value for r in rets if r.status != JobStatus.COMPLETED]
        if errors:
            state = (
                TrialState.PRUNED if isinstance(errors[0], optuna.TrialPruned) else TrialState.FAIL
            )
            if state == TrialState.FAIL:
                trial.set_user_attr("error", f"{type(errors[0]).__name__}: {errors[0]}")
                log.warning("trial %d failed: %s", trial.number, errors[0])
            return study.tell(trial, state=state)
        metrics = [r.return_value for r in rets]
        try:
            values = [sum(float(m[k]) for m in metrics) / len(metrics) for k in s.objectives]
        except KeyError as e:
            trial.set_user_attr("error", f"the task returned no {e} (hydra.sweeper.objectives)")
            return study.tell(trial, state=TrialState.FAIL)
        run_ids = [m["mlflow_run_id"] for m in metrics if "mlflow_run_id" in m]
        trial.set_user_attr(study_tracking.RUN_ATTR, run_ids)
        for key in ("test_acc", "params", "size_file_bytes"):
            if all(key in m for m in metrics):
                trial.set_user_attr(key, sum(float(m[key]) for m in metrics) / len(metrics))
        if len(metrics) > 1:
            trial.set_user_attr(
                "per_repeat", [[float(m[k]) for k in s.objectives] for m in metrics]
            )
        return study.tell(trial, values)

    @contextmanager
    def _heartbeat(self, study: optuna.Study, trials: list[Trial]) -> Iterator[None]:
        """Beat for the running trials so other workers can tell this one is alive.

        Optuna beats only inside ``study.optimize``; with ask/tell the storage's public
        ``record_heartbeat`` is called here from a daemon thread.
        """
        storage = study._storage
        interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
        if not interval:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            while True:
                for trial in trials:
                    storage.record_heartbeat(trial._trial_id)
                if stop.wait(interval):
                    return

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


class StaleTrialHandler:
    """When a worker died mid-trial: mark its MLflow run FAILED, then retry the trial if allowed."""

    def __init__(self, max_retry: int) -> None:
        self.retry = RetryHeartbeatStaleTrialCallback(max_retry) if max_retry > 0 else None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        parent = study.user_attrs.get(study_tracking.PARENT_ATTR)
        if parent:
            study_tracking.mark_trial(
                parent, _with_error(trial, "worker stopped (heartbeat stale)")
            )
        log.warning("trial %d: its worker stopped beating; marked failed", trial.number)
        if self.retry is not None:
            self.retry(study, trial)


def _with_error(trial: FrozenTrial, message: str) -> FrozenTrial:
    trial.user_attrs["error"] = message
    return trial


def _existing_trials(storage: Any, name: str) -> int:
    try:
        return len(optuna.load_study(study_name=name, storage=storage).trials)
    except KeyError:
        return 0


def _sampler(spec: Any, existing: int) -> optuna.samplers.BaseSampler | None:
    """The configured sampler; a seeded one is re-seeded past the trials already in the study,
    so a resumed sweep does not draw the same random points again."""
    if not spec:
        return None
    spec = OmegaConf.to_container(spec) if isinstance(spec, DictConfig) else dict(spec)
    if spec.get("seed") is not None:
        spec["seed"] = int(spec["seed"]) + existing
    return instantiate(spec)
