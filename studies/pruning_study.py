"""The hand-detection study's compression path on LIS, with its ablations, paired over splits.

Per split: the dense teacher (``+recipe=teacher``), and the teacher sparsity-trained three ways
(``local``: the proximal step with local sparse-rate attenuation, the method; ``uniform``: the same
rate everywhere, its ablation; ``none``: conv BatchNorms but no sparsity training), each pruned by
0.5, 0.7 and 0.85 of its units and recovered for 60 epochs by KD from the unpruned model or by
fine-tuning. One Hydra multirun per method over its missing splits, tagged ``study=pruning_<data>``
and ``method=<sparsity>-<amount>-<recovery>``, nested in the study's MLflow run.

Reported per cell: test accuracy right after pruning and after recovery, parameters and int8
deployed bytes; per sparsity mode: the sparse teacher's accuracy against the dense one, the
fraction of units below threshold and the accuracy when exactly those are pruned; paired
comparisons (mean difference, 95 % interval, Wilcoxon p): local vs uniform, KD vs fine-tuning.

Usage: python studies/pruning_study.py [--splits 0,1,2,3,4] [--shard i/n] [--out DIR]
       [hydra overrides for every run...]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from signdistill.stats import mean_ci

from study import ROOT, Study, lis_root, paired_text, pct

SPARSITY = {
    "local": (),
    "uniform": ("prune.sparsity.mode=uniform",),
    "none": ("prune.sparsity=null",),
}
AMOUNTS = (0.5, 0.7, 0.85)
RECOVERY = ("kd", "finetune")


def methods() -> dict[str, tuple[str, ...]]:
    """Every method's name and overrides: the dense teacher first (the others learn from their
    own sparse models, stored like teachers)."""
    out = {"teacher": ("+recipe=teacher",)}
    for (mode, extra), amount, recover in itertools.product(SPARSITY.items(), AMOUNTS, RECOVERY):
        out[f"{mode}-{amount}-{recover}"] = (
            "model=teacher",
            "prune=slim",
            f"prune.amount={amount}",
            f"prune.recover={recover}",
            *extra,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="0,1,2,3,4")
    parser.add_argument("--shard", default="0/1", help="i/n: every n-th split (one per core)")
    parser.add_argument("--out", type=Path, help="default: mlruns/studies/pruning_<data>")
    args, overrides = parser.parse_known_args()
    if not any(o.startswith("data=") for o in overrides):
        overrides = ["data=lis", f"data.source.root={lis_root()}", *overrides]
    data = next(o.removeprefix("data=") for o in overrides if o.startswith("data="))
    study = Study(f"pruning_{data}", overrides)
    out = args.out or ROOT / "mlruns/studies" / study.name
    splits = [int(s) for s in args.splits.split(",")]
    shard, shards = (int(v) for v in args.shard.split("/"))
    for name, extra in methods().items():
        missing = sorted(set(splits[shard::shards]) - done(study.runs(), name))
        if missing:
            sweep = [f"data.split_seed={','.join(map(str, missing))}", *extra]
            study.launch(sweep, out / name, name == "teacher", {"method": name})
    results = Results(study.runs(), splits)
    if results.missing():
        print("other shards are still running: run again without --shard for the report")
        return
    text = results.report()
    out.mkdir(parents=True, exist_ok=True)
    (out / "pruning.md").write_text(text + "\n")
    study.client.log_text(study.parent, text, "pruning.md")
    study.finish()
    print(text)


def done(runs: pd.DataFrame, method: str) -> set[int]:
    if runs.empty or "tags.method" not in runs:
        return set()
    return {int(s) for s in runs.loc[runs["tags.method"] == method, "params.data.split_seed"]}


class Results:
    """The study's finished runs by (method, split)."""

    def __init__(self, runs: pd.DataFrame, splits: list[int]) -> None:
        self.splits = splits
        self.metrics: dict[tuple[str, int], dict[str, float]] = {}
        for _, row in runs.iterrows():
            key = (row["tags.method"], int(row["params.data.split_seed"]))
            metrics = {k.removeprefix("metrics."): v for k, v in row.items() if "metrics." in k}
            self.metrics.setdefault(key, metrics)

    def missing(self) -> bool:
        return any((m, s) not in self.metrics for m in methods() for s in self.splits)

    def values(self, method: str, key: str) -> np.ndarray:
        return np.array([self.metrics[(method, s)][key] for s in self.splits])

    def report(self) -> str:
        return "\n".join([*self.cells(), "", *self.sparse_models(), "", *self.comparisons()])

    def cells(self) -> list[str]:
        """One row per (sparsity, amount, recovery)."""
        lines = [
            f"LIS, {len(self.splits)} splits; test accuracy %, mean [95 % CI]",
            "",
            "| sparsity | amount | recovery | params | int8 bytes | right after pruning "
            "| after recovery |",
            "|---|---|---|---|---|---|---|",
        ]
        for mode, amount, recover in itertools.product(SPARSITY, AMOUNTS, RECOVERY):
            name = f"{mode}-{amount}-{recover}"
            first = self.metrics[(name, self.splits[0])]
            lines.append(
                f"| {mode} | {amount} | {recover} | {int(first['params']):,} "
                f"| {int(first['size_int8_bytes']):,} "
                f"| {pct(mean_ci(self.values(name, 'test_acc_before_recovery')))} "
                f"| {pct(mean_ci(self.values(name, 'test_acc')))} |"
            )
        return lines

    def sparse_models(self) -> list[str]:
        """Each sparsity mode's sparse teacher against the dense one, and pruned at threshold."""
        dense = self.values("teacher", "test_acc")
        lines = [
            f"dense teacher: {pct(mean_ci(dense))}",
            "",
            "| sparsity | sparse teacher | vs dense teacher | units below threshold "
            "| pruned of exactly those (no recovery) | vs the sparse teacher |",
            "|---|---|---|---|---|---|",
        ]
        for mode in SPARSITY:
            name = f"{mode}-0.5-kd"  # every cell of a mode prunes the same sparse model
            sparse = self.values(name, "sparse_test_acc")
            at_threshold = self.values(name, "test_acc_pruned_below_threshold")
            below = self.values(name, "sparse_below_threshold")
            lines.append(
                f"| {mode} | {pct(mean_ci(sparse))} | {paired_text(sparse, dense)} "
                f"| {100 * below.mean():.1f} % ({100 * below.min():.1f}-{100 * below.max():.1f}) "
                f"| {pct(mean_ci(at_threshold))} | {paired_text(at_threshold, sparse)} |"
            )
        return lines

    def comparisons(self) -> list[str]:
        """Local vs uniform attenuation and KD vs fine-tuning, paired, in every cell."""
        lines = ["| comparison | amount | recovery / sparsity | after pruning | after recovery |"]
        lines.append("|---|---|---|---|---|")
        for amount, recover in itertools.product(AMOUNTS, RECOVERY):
            a, b = f"local-{amount}-{recover}", f"uniform-{amount}-{recover}"
            lines.append(f"| local - uniform | {amount} | {recover} | {self._pair(a, b)} |")
        for amount, mode in itertools.product(AMOUNTS, SPARSITY):
            a, b = f"{mode}-{amount}-kd", f"{mode}-{amount}-finetune"
            lines.append(f"| KD - fine-tuning | {amount} | {mode} | {self._pair(a, b)} |")
        return lines

    def _pair(self, a: str, b: str) -> str:
        cells = [
            paired_text(self.values(a, key), self.values(b, key))
            for key in ("test_acc_before_recovery", "test_acc")
        ]
        return " | ".join(cells)


if __name__ == "__main__":
    main()
