"""The sweeper Hydra discovers: a thin class whose work lives in ``_impl``.

Hydra imports every public module of ``hydra_plugins`` while it scans plugins, at the start of
every Hydra app in the environment; modules named ``_*`` it skips. So this one imports nothing
heavy, and Optuna (and MLflow, when a study is tracked) load only when a sweep starts, as in the
official Optuna sweeper.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hydra.plugins.sweeper import Sweeper

if TYPE_CHECKING:
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    """See :class:`hydra_plugins.signdistill_sweeper.config.OptunaSweeperConf` for the settings."""

    def __init__(self, **settings: Any) -> None:
        from hydra_plugins.signdistill_sweeper._impl import OptunaSweeperImpl

        self.sweeper = OptunaSweeperImpl(settings)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        self.sweeper.sweep(arguments)
