"""The sweeper's structured config and its sampler presets, stored in Hydra's ConfigStore.

Hydra imports this module while it scans plugins, in every Hydra app of the environment: it
imports nothing beyond Hydra's ConfigStore (no Optuna, no MLflow).
"""

# No `from __future__ import annotations` (OmegaConf reads these annotations at runtime, and Hydra
# imports plugin modules outside sys.modules while scanning) and typing's Optional (OmegaConf 2.3
# knows no `X | None`):
# ruff: noqa: UP045
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SamplerConf:
    """An Optuna sampler preset (``hydra/sweeper/sampler=<name>``).

    Every argument left null is left out of the sampler's call, so Optuna's own default applies:
    restating Optuna's defaults here would drift from them and pass arguments Optuna 5 deprecates
    (a FutureWarning, fatal under ``-W error``).
    """

    _target_: str = MISSING
    seed: Optional[int] = None  # re-seeded past a resumed study's trials


@dataclass
class TPESamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.TPESampler"
    n_startup_trials: Optional[int] = None
    n_ei_candidates: Optional[int] = None
    multivariate: Optional[bool] = None
    group: Optional[bool] = None
    constant_liar: Optional[bool] = None


@dataclass
class RandomSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class CmaEsSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.CmaEsSampler"
    x0: Optional[dict[str, Any]] = None
    sigma0: Optional[float] = None
    n_startup_trials: Optional[int] = None
    warn_independent_sampling: Optional[bool] = None
    consider_pruned_trials: Optional[bool] = None
    restart_strategy: Optional[str] = None
    popsize: Optional[int] = None
    inc_popsize: Optional[int] = None
    use_separable_cma: Optional[bool] = None
    with_margin: Optional[bool] = None
    lr_adapt: Optional[bool] = None


@dataclass
class NSGAIISamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: Optional[int] = None
    mutation_prob: Optional[float] = None
    crossover_prob: Optional[float] = None
    swapping_prob: Optional[float] = None


@dataclass
class QMCSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: Optional[str] = None
    scramble: Optional[bool] = None
    warn_asynchronous_seeding: Optional[bool] = None
    warn_independent_sampling: Optional[bool] = None


@dataclass
class GridSamplerConf(SamplerConf):
    """The grid is the search space (its ``choice`` and ``range`` values), built by the sweeper."""

    _target_: str = "optuna.samplers.GridSampler"


SAMPLERS = {
    "tpe": TPESamplerConf,
    "random": RandomSamplerConf,
    "cmaes": CmaEsSamplerConf,
    "nsgaii": NSGAIISamplerConf,
    "qmc": QMCSamplerConf,
    "grid": GridSamplerConf,
}


@dataclass
class OptunaSweeperConf:
    """Settings of an Optuna study run as a Hydra multirun (``python src/train.py -m ...``).

    The keys of Hydra's official Optuna sweeper mean the same here (``sampler``, ``direction``,
    ``storage``, ``study_name``, ``n_trials``, ``n_jobs``, ``max_failure_rate``, ``params``,
    ``custom_search_space``), some with this project's defaults (a SQLite ``storage``, a
    ``study_name``, one job per round, no ``max_failure_rate``); the others are its additions.
    """

    _target_: str = "hydra_plugins.signdistill_sweeper.sweeper.OptunaSweeper"
    _recursive_: bool = False  # sampler/pruner stay configs: the sweeper re-seeds the sampler
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])
    sampler: Any = MISSING  # a preset of hydra/sweeper/sampler, TPE unless overridden
    pruner: Any = None  # instantiable Optuna pruner (single-objective studies only)
    study_name: Optional[str] = "signdistill"  # null: a name Optuna makes up
    # Any SQLAlchemy URL; a SQLite file by default so the study survives its process (resume);
    # journal://<path> (journal:///abs/optuna.log): Optuna's journal file, for a shared filesystem
    # without a database server (no heartbeats); null: an in-memory study, gone with the process.
    storage: Optional[str] = "sqlite:///mlruns/optuna.db"
    # Optimization directions: `direction` (a string or a list, as in the official plugin) or
    # `directions` (a list), one per objective; minimize one objective when neither is set.
    direction: Any = None
    directions: Optional[list[str]] = None
    # Keys of the metrics dict the task returns, in `directions` order; a task that returns a
    # float (one objective) or a list/tuple (several) needs none.
    objectives: Optional[list[str]] = None
    n_trials: int = 20  # new trials per invocation; re-running the command resumes the study
    # Trials asked per round and handed to the launcher together: with a parallel launcher
    # (hydra/launcher=joblib, submitit_local, submitit_slurm) they run side by side.
    n_jobs: int = 1
    # Torch threads per job (the task's `threads` key) when a parallel launcher runs several jobs
    # of a round at once, so that they do not oversubscribe the cores; a `threads` value on the
    # command line wins; null: leave the task's own.
    trial_threads: Optional[int] = 1
    # Failure limits: stop once more than `max_failures` trials of this invocation have failed,
    # or (official key) once a round's failed fraction exceeds `max_failure_rate`. Each applies
    # when set; with neither set, max_failures is 3.
    max_failures: Optional[int] = None
    max_failure_rate: Optional[float] = None
    # Average each trial's objectives over several values of one key (e.g. split seeds).
    repeat_key: Optional[str] = None
    repeat_values: list[Any] = field(default_factory=list)
    heartbeat_interval: int = 60  # seconds; a killed worker's trial is failed after grace_period
    grace_period: int = 180
    max_retry: int = 0  # re-run a trial whose worker died (heartbeat stale) this many times
    params: Optional[dict[str, str]] = None  # search space, Hydra override grammar
    # Dotted path of a callable(cfg, trial) that suggests more parameters (conditional spaces)
    custom_search_space: Optional[str] = None
    # Config node of the task's Lightning callbacks: a pruned study adds `trial_pruning` there
    callbacks_key: str = "train.callbacks"
    # Reference point of the front's hypervolume, one value per objective in its own units (e.g.
    # [0.0, 200000] for val_acc and bytes): the worst values that still count. When set, a tracked
    # study logs the hypervolume of its completed trials as the stepped metric `hypervolume`.
    hypervolume_reference: Optional[list[float]] = None


def register() -> None:
    """Store the sweeper (``hydra/sweeper=signdistill_optuna``) and the sampler presets."""
    store = ConfigStore.instance()
    store.store(
        group="hydra/sweeper",
        name="signdistill_optuna",
        node=OptunaSweeperConf,
        provider="signdistill",
    )
    for name, node in SAMPLERS.items():
        store.store(group="hydra/sweeper/sampler", name=name, node=node, provider="signdistill")


register()
