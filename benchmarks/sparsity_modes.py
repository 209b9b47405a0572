"""Local sparse-rate attenuation against a uniform rate, on one LIS split.

For each mode: the sparsity-trained teacher (its test accuracy and the share of near-zero
BatchNorm scales per layer), the same model pruned by `prune.amount` before any recovery, and
after KD recovery. Each is a pipeline run logged to MLflow.

Usage: python benchmarks/sparsity_modes.py [hydra overrides, e.g. prune.amount=0.7]
"""

from __future__ import annotations

import sys

import mlflow

from signdistill.pipeline import run

from common import config, lis_root

LAYERS = ("sparsity_conv1", "sparsity_conv2", "sparsity_lstm1")


def main(overrides: list[str]) -> None:
    base = [
        "data=lis",
        f"data.source.root={lis_root()}",
        "trainer.enable_progress_bar=false",
        "model=teacher",
        "prune=slim",
        "prune.recover=kd",
        "export.latency_runs=0",
        *overrides,
    ]
    rows = []
    for mode in ("local", "uniform"):
        recovered = run(config(*base, f"prune.sparsity.mode={mode}"))
        client = mlflow.MlflowClient()
        source = client.get_run(recovered["mlflow_run_id"]).data.tags["pruned_from"]
        sparse = client.get_run(source).data.metrics
        zeros = " / ".join(f"{100 * sparse[k]:.0f} %" for k in LAYERS)
        rows.append(
            f"| {mode} | {zeros} | {100 * sparse['test_acc']:.1f} "
            f"| {100 * recovered['test_acc_before_recovery']:.1f} "
            f"| {100 * recovered['test_acc']:.1f} | {int(recovered['params']):,} |"
        )
    print("test accuracy %; near-zero = |BatchNorm scale| < 0.01")
    print("| mode | near-zero scales conv1 / conv2 / lstm1 | sparse teacher | pruned ", end="")
    print("| KD-recovered | params |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
