"""Conditional search spaces for the sweeps in ``sweeps/`` (``hydra.sweeper.custom_search_space``):
parts of a space that Hydra's override grammar cannot say, because a key exists only on one path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig

if TYPE_CHECKING:
    import optuna

PRUNE_AMOUNTS = (0.5, 0.7, 0.8, 0.9)


def compression_paths(cfg: DictConfig, trial: optuna.Trial) -> None:
    """``sweeps/compression_pareto.yaml``: each trial is a KD student of some width, or the teacher
    pruned by some amount and recovered by KD or fine-tuning; the other path's knobs are not
    sampled (a student is never pruned, a pruned teacher has no width)."""
    path = trial.suggest_categorical("+sweeps/compression", ["student", "pruned_teacher"])
    if path == "student":
        trial.suggest_float("model.width", 0.5, 4.0, log=True)
    else:
        trial.suggest_categorical("prune.amount", PRUNE_AMOUNTS)
        trial.suggest_categorical("prune.recover", ["kd", "finetune"])
