"""Entry point: `python src/train.py [overrides]` trains one model; `-m` runs a sweep."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from signdistill.pipeline import run


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict:
    """Hydra task: returns the run's summary metrics (the sweeper reads its objectives here)."""
    return run(cfg)


if __name__ == "__main__":
    main()
