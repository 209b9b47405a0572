"""The Optuna sweeper's work: ask Optuna for trials, launch them as Hydra jobs, tell it the results.

Uses Optuna's public ask/tell API. The task talks to the sweeper only through its config and its
return value: a float, a list or tuple of floats, or a dict of named metrics (read at
``objectives``). A task config with ``logger.parent_run_id`` is tracked in MLflow: a parent run for
the study, and per trial ``logger.parent_run_id``, ``logger.run_name`` and ``++logger.tags`` that
make the task's run its tagged child. A pruned single-objective study adds an instantiable
Lightning callback at ``<callbacks_key>.trial_pruning``.

Hydra never imports this module while it scans plugins (its name starts with ``_``).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import GridSampler
from optuna.storages import BaseStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, Trial, TrialState

from hydra_plugins.signdistill_sweeper import _results, job
from hydra_plugins.signdistill_sweeper._sampling import sampler
from hydra_plugins.signdistill_sweeper._space import SearchSpace, SweepInputError
from hydra_plugins.signdistill_sweeper._storage import (
    heartbeat_interval,
    journal_path,
    open_storage,
)
from signdistill.errors import UserError
from signdistill.overrides import override_value
from signdistill.urls import redact_url

if TYPE_CHECKING:
    from hydra_plugins.signdistill_sweeper._tracking import StudyRuns

log = logging.getLogger(__name__)

DEFAULT_MAX_FAILURES = 3  # when neither max_failures nor max_failure_rate is set
PRUNING_TARGET = f"{job.__name__}.{job.pruning_callback.__name__}"
EXCLUDE_KEYS = "hydra.job.config.override_dirname.exclude_keys"
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
THREADS_KEY = "threads"  # the task's torch intra-op threads (conf/config.yaml)


class SweepFailedError(RuntimeError):
    """More trials failed than ``max_failures`` or ``max_failure_rate`` allows."""


class JobLostError(RuntimeError):
    """A parallel launcher raised instead of returning a round's results (a job killed, timed out
    or lost with its node: joblib and submitit raise for the whole round)."""


class OptunaSweeperImpl:
    """See :class:`hydra_plugins.signdistill_sweeper.config.OptunaSweeperConf` for the settings."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = s = OmegaConf.create(dict(settings))
        self.directions = directions(s)
        self.objectives = list(s.objectives) if s.objectives else None
        if self.objectives and len(self.objectives) != len(self.directions):
            raise ValueError("hydra.sweeper.objectives and its directions differ in length")
        self.custom = get_method(_dotpath(s.custom_search_space)) if s.custom_search_space else None
        self.stale = StaleTrialHandler(s.max_retry)
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
        """Run ``n_trials`` new trials, ``n_jobs`` at a time, then save the study's results."""
        s = self.settings
        # a search space Optuna cannot sample is refused here, before any study or MLflow run
        space = SearchSpace.parse(OmegaConf.to_container(s.params) if s.params else {}, arguments)
        self.storage = self._storage()
        study = self._study(space)
        runs = self.stale.runs = self._study_runs(study)
        log.info(
            "Study %s (%d trials so far) in %s; %s, directions %s; MLflow parent run %s",
            study.study_name,
            len(study.trials),
            redact_url(s.storage) if s.storage else "memory",
            type(study.sampler).__name__,
            self.directions,
            runs.parent_id if runs else "none (the task config has no logger.parent_run_id)",
        )
        try:
            launched = self._trials(study, space, runs)
        except BaseException as e:  # the study's run ends FAILED, or KILLED on a signal
            if runs:
                runs.end(e)
            raise
        if launched < s.n_trials:
            log.info(
                "The grid is exhausted (every point has been tried): the sweep ends after %d of "
                "%d trials",
                launched,
                s.n_trials,
            )
        if runs:
            runs.finish()
        _results.save(study, Path(self.config.hydra.sweep.dir))

    def _trials(self, study: optuna.Study, space: SearchSpace, runs: StudyRuns | None) -> int:
        """Launch up to ``n_trials`` trials, ``n_jobs`` at a time; returns how many ran."""
        s = self.settings
        failures, launched = 0, 0
        while launched < s.n_trials and not _grid_exhausted(study):
            told = self._round(study, space, runs, min(s.n_jobs, s.n_trials - launched))
            launched += len(told)
            failed = [t for t in told if t.state == TrialState.FAIL]
            failures += len(failed)
            self._check_failures(failures, failed, len(told))
        return launched

    def _round(
        self, study: optuna.Study, space: SearchSpace, runs: StudyRuns | None, n: int
    ) -> list[FrozenTrial]:
        """Ask ``n`` trials, launch their jobs together, tell Optuna (and MLflow) how each went."""
        with _heartbeat_warnings_off():
            optuna.storages.fail_stale_trials(study)
            trials = [study.ask(space.distributions()) for _ in range(n)]
        for trial in trials:
            self._configure(trial, space)
        with _heartbeat(self.storage, trials):
            returns = self._launch(study, trials, space, runs)
        told = [self._tell(study, t, rets, runs) for t, rets in zip(trials, returns, strict=True)]
        if runs:
            for trial in told:
                runs.mark(trial)
            runs.update_front(study)
        return told

    def _storage(self) -> BaseStorage | None:
        """The study's database (with heartbeats) or journal file (``journal://<path>``, none);
        None for an in-memory study."""
        s = self.settings
        if s.storage is None:
            return None
        if journal_path(s.storage) is not None:
            log.info(
                "Journal storage: Optuna keeps no heartbeats there, so a trial whose worker is "
                "killed stays RUNNING%s",
                "" if not s.max_retry else " and is not retried (hydra.sweeper.max_retry)",
            )
        with _heartbeat_warnings_off():
            return open_storage(s.storage, s.heartbeat_interval, s.grace_period, self.stale)

    def _study(self, space: SearchSpace) -> optuna.Study:
        """The study, created on first use; its objectives carry their names when the task's are
        named (``objectives``), so that ``trials.csv`` and the results say which is which."""
        s = self.settings
        study = optuna.create_study(
            study_name=s.study_name,
            storage=self.storage,
            directions=self.directions,
            sampler=sampler(s.sampler, space),
            pruner=instantiate(s.pruner) if s.pruner else None,
            load_if_exists=True,
        )
        if self.objectives and study.metric_names != self.objectives:
            with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
                warnings.simplefilter("ignore", ExperimentalWarning)
                study.set_metric_names(self.objectives)
        return study

    def _study_runs(self, study: optuna.Study) -> StudyRuns | None:
        """The study's MLflow runs (``_tracking.StudyRuns``) when the task config asks for them:
        a ``logger`` node with ``parent_run_id``. Otherwise MLflow is not even imported."""
        logger = OmegaConf.select(self.config, "logger")
        if not isinstance(logger, DictConfig) or "parent_run_id" not in logger:
            return None
        from hydra_plugins.signdistill_sweeper._tracking import StudyRuns

        reference = self.settings.hypervolume_reference
        try:
            return StudyRuns.open(
                logger, study, self.settings.storage, objective_names(study), reference
            )
        except UserError as e:  # e.g. a read-only mlruns/: one line, as in a single run
            raise SweepInputError(str(e)) from None

    def _configure(self, trial: Trial, space: SearchSpace) -> None:
        """Record the fixed values with the trial, then let ``custom_search_space`` suggest more."""
        fixed = space.fixed_values()
        for key, value in fixed.items():
            trial.set_user_attr(key, value)
        if self.custom is not None:
            self.custom(self.config, trial)
        overlap = trial.params.keys() & fixed.keys()
        if overlap:
            raise ValueError(f"custom_search_space suggested fixed parameters: {sorted(overlap)}")

    def _launch(
        self, study: optuna.Study, trials: list[Trial], space: SearchSpace, runs: StudyRuns | None
    ) -> list[list[JobReturn]]:
        """One job per trial and repeat value; returns each trial's job results."""
        s = self.settings
        repeats = list(s.repeat_values) or [None]
        batch = []
        for trial in trials:
            params = [f"{k}={override_value(v)}" for k, v in trial.params.items()]
            internal = self._internal_overrides(study, trial, runs, space, len(repeats))
            for value in repeats:
                repeat = [] if value is None else [f"{s.repeat_key}={override_value(value)}"]
                batch.append([*space.fixed_lines(), *params, *repeat, *internal])
        results = _launched(self.launcher, batch, self.job_idx)
        self.job_idx += len(results)
        n = len(repeats)
        return [list(results[i * n : (i + 1) * n]) for i in range(len(trials))]

    def _internal_overrides(
        self,
        study: optuna.Study,
        trial: Trial,
        runs: StudyRuns | None,
        space: SearchSpace,
        n_repeats: int,
    ) -> list[str]:
        """The sweeper's own overrides of a trial's jobs, kept out of ``override_dirname``.

        Tracked studies make the job's run a tagged child of the study's run. Jobs that run side
        by side get ``trial_threads`` torch threads each (:meth:`_trial_threads`). Pruned studies
        (one objective, a pruner, no repeats: repeats would report the same epochs to one trial)
        add Optuna's Lightning pruning callback to the task's callbacks.
        """
        s = self.settings
        internal = runs.trial_overrides(study.study_name, trial.number) if runs else {}
        internal |= self._trial_threads(space, n_repeats)
        if len(self.directions) == 1 and s.pruner and n_repeats == 1:
            if s.storage is None:
                raise ValueError("a pruned study needs hydra.sweeper.storage: jobs load it there")
            internal[f"++{s.callbacks_key}.trial_pruning"] = {
                "_target_": PRUNING_TARGET,
                "study_name": study.study_name,
                "storage": s.storage,
                "trial_id": trial._trial_id,  # Optuna has no public accessor for it
                # Optuna does not store a study's pruner: the job rebuilds it
                "pruner": OmegaConf.to_container(s.pruner, resolve=True),
            }
        if not internal:
            return []
        excluded = [
            *self.config.hydra.job.config.override_dirname.exclude_keys,
            *(key.lstrip("+") for key in internal),
        ]
        return [
            *(f"{key}={override_value(value)}" for key, value in internal.items()),
            f"{EXCLUDE_KEYS}={override_value(excluded)}",
        ]

    def _trial_threads(self, space: SearchSpace, n_repeats: int) -> dict[str, int]:
        """``threads=<trial_threads>`` when a parallel launcher runs several jobs of a round at
        once (``n_jobs`` trials, or a trial's repeats), so that they do not oversubscribe the
        cores; nothing if the task config has no ``threads`` key, if the command line or the
        search space sets it, or with Hydra's basic launcher (one job at a time)."""
        threads = self.settings.trial_threads
        side_by_side = self.settings.n_jobs * n_repeats > 1
        if threads is None or not side_by_side or _sequential(self.launcher):
            return {}
        if THREADS_KEY not in self.config or space.sets(THREADS_KEY):
            return {}
        return {THREADS_KEY: threads}

    def _tell(
        self, study: optuna.Study, trial: Trial, rets: Sequence[JobReturn], runs: StudyRuns | None
    ) -> FrozenTrial:
        """Record a trial's outcome: its objectives averaged over repeats, or why it failed."""
        if runs:
            runs.record(trial)
        # a failed JobReturn re-raises its exception from .return_value; _return_value holds it
        errors = [r._return_value for r in rets if r.status != JobStatus.COMPLETED]
        if errors and isinstance(errors[0], optuna.TrialPruned):
            return _told(study, trial, state=TrialState.PRUNED)
        if errors:
            return _failed(study, trial, f"{type(errors[0]).__name__}: {errors[0]}")
        returned = [r.return_value for r in rets]
        n = len(self.directions)
        try:
            per_job = [_results.objective_values(v, self.objectives, n) for v in returned]
        except ValueError as e:
            return _failed(study, trial, str(e))
        for key, value in _results.extra_metrics(returned, self.objectives).items():
            trial.set_user_attr(key, value)
        if len(per_job) > 1:
            trial.set_user_attr("per_repeat", per_job)
        values = [sum(column) / len(column) for column in zip(*per_job, strict=True)]
        return _told(study, trial, values=values)

    def _check_failures(self, total: int, failed: list[FrozenTrial], asked: int) -> None:
        """Stop the sweep once failures pass ``max_failures`` or a round's ``max_failure_rate``."""
        if not failed:
            return
        s = self.settings
        cap = s.max_failures
        if cap is None and s.max_failure_rate is None:
            cap = DEFAULT_MAX_FAILURES
        last = failed[-1].user_attrs["error"]
        if cap is not None and total > cap:
            raise SweepFailedError(
                f"{total} trials failed (hydra.sweeper.max_failures={cap}), the last with "
                f"{last}; see the trials' 'error' attribute or their MLflow runs"
            )
        if s.max_failure_rate is not None and len(failed) / asked > s.max_failure_rate:
            raise SweepFailedError(
                f"{len(failed)} of {asked} trials of a round failed (hydra.sweeper."
                f"max_failure_rate={s.max_failure_rate}), the last with {last}"
            )


def directions(settings: DictConfig) -> list[str]:
    """The study's directions: ``direction`` (a string or list, the official plugin's key) or
    ``directions``; one minimized objective when neither is set."""
    given = [
        [d] if isinstance(d, str) else list(d)
        for d in (settings.direction, settings.directions)
        if d is not None
    ]
    if len(given) == 2 and given[0] != given[1]:
        raise ValueError("hydra.sweeper.direction and .directions disagree: set one of them")
    return given[0] if given else ["minimize"]


def objective_names(study: optuna.Study) -> list[str]:
    """The study's objective names: ``hydra.sweeper.objectives``, else ``values_<i>``."""
    return study.metric_names or [f"values_{i}" for i in range(len(study.directions))]


def _grid_exhausted(study: optuna.Study) -> bool:
    return isinstance(study.sampler, GridSampler) and study.sampler.is_exhausted(study)


def _told(study: optuna.Study, trial: Trial, **outcome: Any) -> FrozenTrial:
    """``study.tell``, except for a grid sampler's stop request on its last point.

    ``GridSampler.after_trial`` calls ``study.stop()`` once the grid is done, and Optuna raises
    there outside ``study.optimize``; the trial is stored by then (tell's ``finally``), and the
    sweep sees the exhausted grid itself.
    """
    try:
        return study.tell(trial, **outcome)
    except RuntimeError:
        if not _grid_exhausted(study):
            raise
        return study.get_trials(deepcopy=False)[trial.number]


def _failed(study: optuna.Study, trial: Trial, error: str) -> FrozenTrial:
    trial.set_user_attr("error", error)
    log.warning("Trial %d failed: %s", trial.number, error)
    return _told(study, trial, state=TrialState.FAIL)


def _dotpath(path: str) -> str:
    """``custom_search_space`` as ``get_method`` takes it.

    The official plugin's examples write a leading dot for a module beside the app's script
    (``.custom-search-space-objective.configure``): Hydra 1.1 dropped empty parts, Hydra 1.3 rejects
    them as a relative import. Without the dot the module is found on ``sys.path[0]``, the script's
    folder, as before.
    """
    return path.lstrip(".")


def _sequential(launcher: Launcher) -> bool:
    """Hydra's basic launcher runs a round's jobs one after another, in the sweep's process.

    Compared by name: Hydra's plugin scan may load its module again, making a second class.
    """
    return any(f"{c.__module__}.{c.__qualname__}" == BASIC_LAUNCHER for c in type(launcher).__mro__)


def _launched(launcher: Launcher, batch: list[list[str]], job_idx: int) -> list[JobReturn]:
    """The launcher's results of one round's jobs.

    A job that raises comes back as a failed ``JobReturn`` from every launcher. A job that never
    returns (killed, out of memory, past its time limit, its node lost) makes joblib and
    submitit raise for the whole round instead: then every job of the round is failed with that
    error (loky stops the round's other workers; submitit's keep running, unawaited), and the
    sweep goes on. Hydra's basic launcher runs jobs in this process: its errors still end the
    sweep, as before.
    """
    try:
        return list(launcher.launch(batch, initial_job_idx=job_idx))
    except Exception as e:
        if _sequential(launcher):
            raise
        lost = JobLostError(f"a job of its round did not return ({type(e).__name__}: {e})")
        log.warning("The launcher raised for a round of %d jobs: %s", len(batch), lost)
        return [JobReturn(status=JobStatus.FAILED, _return_value=lost) for _ in batch]


@contextmanager
def _heartbeat_warnings_off() -> Iterator[None]:
    """Silence what Optuna says of the heartbeat API the sweeper relies on knowingly.

    Optuna 5 marks ``heartbeat_interval``, ``fail_stale_trials`` and the retry callback
    experimental, and warns at ``ask`` that heartbeats are meant for ``study.optimize`` (the
    sweeper beats itself around ask/tell: ``_heartbeat``). An app run with ``-W error``, as the
    official plugin's test suite runs, must not fail on either.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with")
        yield


@contextmanager
def _heartbeat(storage: BaseStorage | None, trials: list[Trial]) -> Iterator[None]:
    """Beat for the running trials so other workers can tell this one is alive.

    Optuna beats only inside ``study.optimize``; with ask/tell the storage's public
    ``record_heartbeat`` is called here from a daemon thread, in the sweep's process, for as long
    as the launcher has the round's jobs (in this process or others: joblib, submitit). A journal
    file keeps no heartbeats.
    """
    interval = heartbeat_interval(storage)
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
    """When a worker died mid-trial: mark its MLflow runs FAILED, retry the trial if allowed."""

    def __init__(self, max_retry: int) -> None:
        with _heartbeat_warnings_off():
            self.retry = RetryHeartbeatStaleTrialCallback(max_retry) if max_retry > 0 else None
        self.runs: StudyRuns | None = None  # set once the study is open, when it is tracked

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.runs is not None:
            trial.user_attrs["error"] = "worker stopped (heartbeat stale)"
            self.runs.mark(trial)
        log.warning("Trial %d: its worker stopped beating; marked failed", trial.number)
        if self.retry is not None:
            self.retry(study, trial)
