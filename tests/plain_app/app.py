"""An unrelated Hydra app: the project's plugins, installed in its environment, stay out of its way.

Its task prints which of the heavy packages were imported by then (Hydra has scanned every plugin).
"""

import sys

import hydra
from omegaconf import DictConfig

HEAVY = {"mlflow", "optuna", "signdistill", "torch"}


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    print("imported:", sorted(HEAVY & {name.split(".")[0] for name in sys.modules}))


if __name__ == "__main__":
    main()
