"""A stand-in for ``src/train.py`` in sweeper tests: instant, deterministic metrics.

It keeps the pipeline's side of the sweeper contract: its run is a child of
``logger.parent_run_id`` named ``logger.run_name`` and tagged with ``logger.tags`` (ended FAILED on
an error); every entry of ``train.callbacks`` is instantiated and handed to a Lightning Trainer
that logs ``val_acc`` per epoch; the metrics dict is returned. ``returns`` makes it return a
float or a list instead, and it raises (or SIGKILLs its own process) on request, so the sweeper
is tested without training anything. It also returns its process id and ``threads`` (the
sweeper's per-trial thread count), which the sweeper keeps with each trial, and with
``rendezvous`` whether the two jobs of a round ran side by side.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import hydra
import mlflow
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

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


def fit(callbacks: list[Any], epochs: int, final_acc: float) -> None:
    """What the pipeline's Trainer shows its callbacks: ``val_acc`` rising to ``final_acc``.

    Lightning is imported only when there are callbacks (a pruned sweep): it takes seconds.
    """
    import lightning as L
    import torch

    class Curve(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch: Any, index: int) -> torch.Tensor:
            return self.weight.sum()

        def validation_step(self, batch: Any, index: int) -> None:
            self.log("val_acc", final_acc * (self.current_epoch + 1) / epochs)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.0)

    batches = [torch.ones(1)]
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    trainer.fit(Curve(), train_dataloaders=batches, val_dataloaders=batches)


def rendezvous(folder: Path, trial_number: int, timeout_s: float = 300.0) -> float:
    """1.0 once both jobs of this trial's round of two (trials 2k, 2k+1) have started, so they
    run side by side; 0.0 if the other has not started after ``timeout_s`` (one at a time)."""
    folder.mkdir(parents=True, exist_ok=True)
    round_ = trial_number // 2
    (folder / f"{round_}-{trial_number}").touch()
    deadline = time.monotonic() + timeout_s
    while len(list(folder.glob(f"{round_}-*"))) < 2:
        if time.monotonic() > deadline:
            return 0.0
        time.sleep(0.1)
    return 1.0


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    """The task: one MLflow run with the metrics, which are also returned to the sweeper."""
    experiment = tracking.configure(
        cfg.logger.tracking_uri, cfg.logger.experiment_name, cfg.logger.artifact_root
    )
    tags = {"kind": "dummy", **OmegaConf.to_container(cfg.logger.tags)}
    name = cfg.logger.run_name or "dummy"
    with tracking.run(experiment, name, tags, cfg.logger.parent_run_id) as active:
        mlflow.log_params({"x": cfg.x, "width": cfg.width, "seed": cfg.seed})
        result = metrics(cfg.x, cfg.width, cfg.seed)
        result["pid"], result["threads"] = os.getpid(), cfg.threads or 0
        if cfg.rendezvous:
            number = int(cfg.logger.tags["optuna.trial_number"])
            result["side_by_side"] = rendezvous(Path(cfg.rendezvous), number)
        time.sleep(cfg.sleep_s)
        if name == cfg.kill_run:  # a worker killed mid-trial: nothing after this runs
            os.kill(os.getpid(), signal.SIGKILL)
        if cfg.fail_above is not None and cfg.x > cfg.fail_above:
            raise RuntimeError(f"x={cfg.x} is above fail_above={cfg.fail_above}")
        callbacks = [instantiate(node) for node in cfg.train.callbacks.values()]
        if callbacks:
            fit(callbacks, cfg.epochs, result["val_acc"])
        mlflow.log_metrics(result)
    if cfg.returns == "float":
        return result["val_acc"]
    if cfg.returns == "list":
        return [result["val_acc"], result["size_file_bytes"]]
    if cfg.returns == "nothing":
        return None
    return {**result, "mlflow_run_id": active.info.run_id}


if __name__ == "__main__":
    main()
