# Hydra's Optuna sweeper example (facebookresearch/hydra, plugins/hydra_optuna_sweeper/example,
# MIT), ported: only the sweeper's name in its config differs.
from typing import Tuple  # noqa: UP035  as in the example

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="multi-objective-conf", config_name="config")
def binh_and_korn(cfg: DictConfig) -> Tuple[float, float]:  # noqa: UP006
    x: float = cfg.x
    y: float = cfg.y

    v0 = 4 * x**2 + 4 * y**2
    v1 = (x - 5) ** 2 + (y - 5) ** 2
    return v0, v1


if __name__ == "__main__":
    binh_and_korn()
