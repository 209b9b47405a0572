"""The sweeper's structured config, stored in Hydra's ConfigStore under ``hydra/sweeper``."""

# No `from __future__ import annotations` and typing's Optional: OmegaConf reads these annotations
# at runtime, and Hydra imports plugin modules outside sys.modules while scanning.
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class OptunaSweeperConf:
    """Settings of an Optuna study run as a Hydra multirun (``python src/train.py -m ...``)."""

    _target_: str = "hydra_plugins.signdistill_sweeper.sweeper.OptunaSweeper"
    _recursive_: bool = False  # sampler/pruner stay configs: the sweeper re-seeds the sampler
    study_name: str = "signdistill"
    # Any SQLAlchemy URL; a SQLite file by default so the study survives its process.
    storage: str = "sqlite:///mlruns/optuna.db"
    # Keys of the task's returned metrics, optimized in these directions (validation only:
    # test accuracy is logged by every trial, never optimized).
    objectives: list[str] = field(default_factory=lambda: ["val_acc", "size_file_bytes"])
    directions: list[str] = field(default_factory=lambda: ["maximize", "minimize"])
    n_trials: int = 20  # new trials per invocation; re-running the command resumes the study
    n_jobs: int = 1  # trials asked per round and handed to the launcher together
    sampler: Any = None  # instantiable, e.g. {_target_: optuna.samplers.NSGAIISampler, seed: 0}
    pruner: Any = None  # instantiable Optuna pruner (single-objective studies only)
    max_failures: int = 3  # stop the sweep once more trials than this have failed
    # Average each trial's objectives over several values of one key (e.g. split seeds).
    repeat_key: Optional[str] = None  # noqa: UP045
    repeat_values: list[Any] = field(default_factory=list)
    heartbeat_interval: int = 60  # seconds; a killed worker's trial is failed after grace_period
    grace_period: int = 180
    max_retry: int = 0  # re-run a trial whose worker died (heartbeat stale) this many times
    params: dict[str, str] = field(default_factory=dict)  # search space, Hydra override grammar


ConfigStore.instance().store(
    group="hydra/sweeper", name="signdistill_optuna", node=OptunaSweeperConf, provider="signdistill"
)
