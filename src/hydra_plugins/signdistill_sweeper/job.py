"""The sweeper's side inside a trial's job: the running Optuna trial, for pruning.

A pruned study adds ``<callbacks_key>.trial_pruning={_target_: ...pruning_callback, ...}`` to each
trial's overrides; the task instantiates it (``hydra.utils.instantiate``, which builds the nested
pruner config too) and hands the callback to its Lightning Trainer.

Hydra imports this module while it scans plugins: Optuna is imported only when a job calls in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback


def running_trial(
    study_name: str, storage: str, trial_id: int, pruner: optuna.pruners.BasePruner | None
) -> optuna.trial.Trial:
    """The sweeper's trial ``trial_id``, in its study loaded with the study's pruner.

    Optuna keeps no pruner in its storage, and a study loaded without one prunes with a default
    ``MedianPruner``: so the sweeper passes its pruner's config, and ``trial.should_prune()`` here
    asks the configured pruner. ``storage`` is the sweeper's URL: a database or a journal file.
    """
    import optuna

    from hydra_plugins.signdistill_sweeper._storage import open_storage

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage), pruner=pruner)
    return optuna.trial.Trial(study, trial_id)


def pruning_callback(
    study_name: str,
    storage: str,
    trial_id: int,
    pruner: optuna.pruners.BasePruner | None = None,
    monitor: str = "val_acc",
) -> PyTorchLightningPruningCallback:
    """Optuna's Lightning pruning callback, reporting ``monitor`` per epoch to the sweeper's trial.

    The ``_target_`` of ``trial_pruning`` in a pruned trial's overrides; ``instantiate`` builds
    the nested ``pruner`` config before calling it.
    """
    from optuna_integration import PyTorchLightningPruningCallback

    trial = running_trial(study_name, storage, trial_id, pruner)
    return PyTorchLightningPruningCallback(trial, monitor=monitor)
