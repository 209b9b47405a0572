"""A stand-in for ``src/train.py`` in sweeper tests: instant, deterministic metrics.

Its task logs an MLflow run the way the real pipeline does (a child of ``sweep.parent_run_id``
named ``trial-<n>``, tagged ``optuna.trial_number``, ended FAILED on an error), reports
intermediate ``val_acc`` to the study's pruner (through ``job_trial``, as the pipeline should),
and raises on request, so the sweeper is tested without training anything.
"""

from __future__ import annotations

import time

import hydra
import mlflow
import optuna
from omegaconf import DictConfig

from hydra_plugins.signdistill_sweeper.job import job_trial
from signdistill import tracking


def metrics(x: float, width: float, seed: int) -> dict[str, float]:
    """Accuracy grows with width and peaks at x=0.3; size grows with width: a real trade-off."""
    val_acc = width / (1.0 + width) - (x - 0.3) ** 2 + 0.01 * seed
    return {
        "val_acc": val_acc,
        "test_acc": val_acc - 0.02,
        "size_file_bytes": 1000.0 * width,
        "params": 250.0 * width,
    }


def report_epochs(trial: optuna.trial.Trial, epochs: int, final_acc: float) -> None:
    """What the Lightning pruning callback does: report val_acc per epoch, stop if pruned."""
    for epoch in range(epochs):
        trial.report(final_acc * (epoch + 1) / epochs, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict[str, float | str]:
    """The task: one MLflow run with the metrics, which are also returned to the sweeper."""
    experiment = tracking.configure(
        cfg.logger.tracking_uri, cfg.logger.experiment_name, cfg.logger.artifact_root
    )
    tags: dict[str, str] = {"kind": "dummy"}
    name = "dummy"
    if cfg.sweep.trial_number is not None:
        tags["optuna.trial_number"] = str(cfg.sweep.trial_number)
        tags["optuna.study_name"] = str(cfg.sweep.study_name)
        name = f"trial-{cfg.sweep.trial_number}"
    with tracking.run(experiment, name, tags, cfg.sweep.parent_run_id) as active:
        mlflow.log_params({"x": cfg.x, "width": cfg.width, "seed": cfg.seed})
        result = metrics(cfg.x, cfg.width, cfg.seed)
        time.sleep(cfg.sleep_s)
        if cfg.fail_above is not None and cfg.x > cfg.fail_above:
            raise RuntimeError(f"x={cfg.x} is above fail_above={cfg.fail_above}")
        trial = job_trial(cfg.sweep)
        if trial is not None:
            report_epochs(trial, cfg.epochs, result["val_acc"])
        mlflow.log_metrics(result)
    return {**result, "mlflow_run_id": active.info.run_id}


if __name__ == "__main__":
    main()
