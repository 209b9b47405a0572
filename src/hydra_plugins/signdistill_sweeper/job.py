"""The sweeper's side inside a trial's job: the Optuna trial to report intermediate values to."""

from __future__ import annotations

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig


def job_trial(sweep: DictConfig) -> optuna.trial.Trial | None:
    """The running trial of a pruned sweep's job (``cfg.sweep``), or None outside one.

    Optuna keeps no pruner in its storage, and a study loaded without one prunes with a default
    ``MedianPruner``; so the sweeper passes its pruner's config as ``sweep.pruner`` and the
    study is loaded with it here, making ``trial.should_prune()`` use the configured pruner.
    """
    if not sweep.get("trial_pruning") or sweep.get("trial_id") is None:
        return None
    pruner = sweep.get("pruner")
    study = optuna.load_study(
        study_name=sweep.study_name,
        storage=sweep.storage,
        pruner=instantiate(pruner) if pruner else None,
    )
    return optuna.trial.Trial(study, sweep.trial_id)
