"""Which compression path wins at which size, on the real LIS data over several split seeds.

Rows: the teacher; the seed-sized student distilled from it; the teacher pruned after sparsity
training to about the student's size, recovered by KD from the unpruned model or by fine-tuning;
each as the fp32 weights file, fp32 ONNX and int8 ONNX (test accuracy measured on each), with
batch-1 CPU latency (median, one thread). Every model is a pipeline run logged to MLflow. The
teacher is the early-stopping recipe (`teacher_early`) and the student the fast `kd` recipe, as
when the README's table was measured.

Usage: python benchmarks/lis_compression.py [--seeds 5] [--amount 0.55] [overrides...]
Splits can run in separate processes (--first-seed); `--from-mlflow` then prints the table of all
splits from the logged runs without training anything.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import mlflow
import numpy as np
from hydra.utils import instantiate

from signdistill import export
from signdistill.pipeline import run
from signdistill.sizes import size_metrics

from common import config, lis_root, mean_std, stored_teacher

COLUMNS = ("params", "size_file_bytes", "size_onnx_bytes", "size_int8_bytes")
LATENCY = ("latency_ms_torch", "latency_ms_onnx", "latency_ms_int8")


def teacher_row(cfg) -> dict[str, float]:
    """The stored teacher, exported and measured like the pipeline measures every final model."""
    teacher = stored_teacher(cfg)
    dm = instantiate(cfg.data)
    x, y = dm.tensors("test")
    meta = {"classes": dm.classes, "channels": dm.channels, "length": x.shape[2], "min_length": 17}
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "t.onnx", Path(tmp) / "t.int8.onnx"
        row = dict(teacher.metrics)
        row |= size_metrics(teacher.model, int(row["size_file_bytes"]), None)
        row["size_onnx_bytes"] = export.export_onnx(teacher.model, fp32, x[:2], meta)
        row["size_int8_bytes"] = export.quantize_int8(fp32, int8)
        row["test_acc_int8"] = export.accuracy(int8, x.numpy(), y.numpy())
        row |= export.latencies(teacher.model, fp32, int8, x[:1], runs=200)
    return row


def logged_row(cfg, kind: str, seed: int) -> dict[str, float]:
    """The newest finished run of ``kind`` on LIS split ``seed`` made with this config's pruning
    and export settings, from the configured experiment."""
    mlflow.set_tracking_uri(cfg.logger.tracking_uri)
    same = {
        "data.split_seed": seed,
        "teacher.max_epochs": cfg.teacher.max_epochs,
        "export.latency_runs": cfg.export.latency_runs,
        "prune.amount": cfg.prune.amount,
    }
    if kind.startswith("pruned"):
        same |= {f"prune.sparsity.{k}": cfg.prune.sparsity[k] for k in ("rate", "mode")}
    params = " and ".join(f"params.`{k}` = '{v}'" for k, v in same.items())
    runs = mlflow.search_runs(
        experiment_names=[cfg.logger.experiment_name],
        filter_string=(
            f"tags.kind = '{kind}' and tags.data = 'lis' and {params} and "
            "attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if runs.empty:
        raise SystemExit(f"no finished {kind} run for split {seed}: run without --from-mlflow")
    row = runs.iloc[0]
    return {k.removeprefix("metrics."): v for k, v in row.items() if k.startswith("metrics.")}


KINDS = {
    "student, KD": "student-kd",
    "teacher pruned, KD recovery": "pruned-kd",
    "teacher pruned, fine-tuned": "pruned-finetune",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--amount", type=float, default=0.55)
    parser.add_argument("--from-mlflow", action="store_true", help="print the logged runs' table")
    args, overrides = parser.parse_known_args()
    # the teacher recipe these paths were measured with (README), pinned: the early-stopping one
    base = [
        "data=lis",
        f"data.source.root={lis_root()}",
        "trainer.enable_progress_bar=false",
        "model@teacher=teacher_early",
    ]
    pruned = ["model=teacher_early", "prune=slim", f"prune.amount={args.amount}"]
    rows = {
        "student, KD": ["+recipe=kd"],
        "teacher pruned, KD recovery": [*pruned, "prune.recover=kd"],
        "teacher pruned, fine-tuned": [*pruned, "prune.recover=finetune"],
    }
    results: dict[str, list[dict]] = {"teacher": [], **{name: [] for name in rows}}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for seed in seeds:
        split = [*base, f"data.split_seed={seed}", *overrides]
        results["teacher"].append(teacher_row(config(*split)))
        for name, extra in rows.items():
            cfg = config(*split, *extra)
            results[name].append(
                logged_row(cfg, KINDS[name], seed) if args.from_mlflow else run(cfg)
            )
        print(
            f"split {seed}: "
            + ", ".join(f"{k} {v[-1]['test_acc']:.4f}" for k, v in results.items())
        )

    print(f"\nLIS, splits {list(seeds)}; accuracy % mean +/- std; sizes in bytes; latency ms")
    print(
        "| model | params | weights file | ONNX | int8 ONNX | test acc (fp32) | test acc (int8) "
        "| latency torch / ONNX / int8 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, rs in results.items():
        sizes = " | ".join(f"{np.mean([r[c] for r in rs]):,.0f}" for c in COLUMNS)
        lat = " / ".join(f"{np.median([r[c] for r in rs]):.2f}" for c in LATENCY)
        acc = mean_std([r["test_acc"] for r in rs])
        acc8 = mean_std([r["test_acc_int8"] for r in rs])
        print(f"| {name} | {sizes} | {acc} | {acc8} | {lat} |")


if __name__ == "__main__":
    main()
