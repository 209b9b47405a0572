"""The sweeper's samplers: Optuna's own, each trial seeded by its number.

Imported only when a sweep starts (like ``_impl``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, GridSampler
from optuna.trial import FrozenTrial, TrialState

from hydra_plugins.signdistill_sweeper._space import SearchSpace


def sampler(spec: DictConfig | None, space: SearchSpace) -> BaseSampler | None:
    """The configured sampler, built with Optuna's defaults for every argument left null.

    A seeded sampler draws each trial from ``seed + trial number`` (:class:`TrialSeeded`). A grid
    sampler's grid is the search space.
    """
    if not spec:
        return None
    args = {key: value for key, value in OmegaConf.to_container(spec).items() if value is not None}
    if issubclass(get_class(args["_target_"]), GridSampler):
        return instantiate({**args, "search_space": space.grid()})
    if "seed" in args:
        return TrialSeeded(args)
    return instantiate(args)


class TrialSeeded(BaseSampler):
    """An Optuna sampler rebuilt before each trial, seeded with ``seed + trial number``.

    Several workers share a study, each with its own sampler: seeded alike, they would draw the
    same points in step. Seeded by the trial's number, every trial gets its own draw, the same
    whichever worker asks, and a resumed study new points (numbers continue). The samplers keep
    their state in the study's storage, not in the object, so a rebuilt one loses nothing.
    """

    def __init__(self, args: dict[str, Any]) -> None:
        self.args = args
        self.inner: BaseSampler = instantiate(args)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner = instantiate({**self.args, "seed": self.args["seed"] + trial.number})
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
