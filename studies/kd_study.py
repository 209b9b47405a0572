"""Does distillation earn its place? Every KD recipe against the same student from scratch and
against the teacher, paired over the same splits.

Two steps. **Runs**: for each split, one Hydra multirun of ``src/train.py`` over the recipes
(``conf/recipe/<name>.yaml``) that have no finished run yet, teachers first; every run is tagged
``study=<name>`` and nested under the study's MLflow run. **Analysis**: the finished runs are read
back from MLflow; per method: mean test accuracy with a 95 % t interval; paired differences
against the scratch student of the same size on the fast recipe and on the default (patient,
augmented) one, and against the teacher (mean, 95 % interval, two-sided Wilcoxon signed-rank p,
wins/ties); parameters and fp32 bytes. The table (markdown) and a plot of the paired differences
go to ``--out`` and to the study's MLflow run.

Re-running the same command launches only what is missing; ``--shard i/n`` takes every n-th split
(one process per core). The runs alone are also one plain Hydra command per split, e.g.
    python src/train.py -m data=lis data.split_seed=3 +recipe=teacher,scratch,kd

Usage: python studies/kd_study.py [--splits 10] [--recipes scratch,kd,...] [--out DIR]
       [--split-key data.split_seed] [--shard i/n] [--compare A:B ...] [hydra overrides...]
LIS (the default data) is read from $SIGNDISTILL_LIS_ROOT or ../shared/datasets/lis-emg-imu.
The simulator, leaving one of its 5 subjects out per split (every training capped at 100 epochs):
    python studies/kd_study.py --splits 5 --split-key data.fold \\
      --recipes scratch,kd,scratch_patient,kd_consistent \\
      data=isl_sim data.split=subject train.max_epochs=100 teacher.train.max_epochs=100
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from signdistill.stats import mean_ci

from study import ROOT, Study, lis_root, paired_text, pct


@dataclass(frozen=True)
class Method:
    """A recipe of the study: its scratch baselines of the same size on the fast and on the default
    (patient, augmented) recipe, and the extra teachers it learns from."""

    scratch: str | None = None
    scratch_patient: str | None = None
    teachers: tuple[str, ...] = ()


METHODS = {
    "scratch": Method(scratch_patient="scratch_patient"),
    "kd": Method("scratch", "scratch_patient"),
    "dkd": Method("scratch", "scratch_patient"),
    "kd_ensemble": Method("scratch", "scratch_patient", teachers=("teacher_seed1",)),
    "kd_patient": Method("scratch", "scratch_patient"),
    "scratch_patient": Method(scratch="scratch"),
    "kd_consistent": Method("scratch", "scratch_patient"),
    "tiny_scratch_patient": Method(),
    "tiny_kd_consistent": Method(scratch_patient="tiny_scratch_patient"),
}
BASELINES = ("scratch", "scratch_patient")
# The teachers of each split, trained before the students that look them up: the one students
# distill from (seed 0) and the teacher's first, early-stopping recipe.
TEACHERS = ("teacher", "teacher_early")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--recipes", default=",".join(METHODS), help="comma-separated names")
    parser.add_argument("--split-key", default="data.split_seed")
    parser.add_argument("--out", type=Path, help="default: mlruns/studies/kd_<data name>")
    parser.add_argument("--plot", type=Path, help="also write the plot here (e.g. docs/img/)")
    parser.add_argument(
        "--shard", default="0/1", help="i/n: run only splits with split %% n == i (one per core)"
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="A:B",
        help="also print the paired difference of methods A and B (repeatable)",
    )
    args, overrides = parser.parse_known_args()
    if not any(o.startswith("data=") for o in overrides):
        overrides = ["data=lis", f"data.source.root={lis_root()}", *overrides]
    recipes = args.recipes.split(",")
    unknown = sorted(set(recipes) - set(METHODS))
    if unknown:
        parser.error(f"unknown recipes {unknown}; known: {', '.join(METHODS)}")
    data = next(o.removeprefix("data=") for o in overrides if o.startswith("data="))
    study = Study(f"kd_{data}", overrides)
    out = args.out or ROOT / "mlruns/studies" / study.name
    teachers = [*TEACHERS, *sorted({t for r in recipes for t in METHODS[r].teachers})]
    methods = [*teachers, *recipes]
    shard, shards = (int(v) for v in args.shard.split("/"))
    for split in range(shard, args.splits, shards):
        finished = done(study.runs(), args.split_key, split)
        # teachers first, for the students to find them stored
        for group, as_teacher in ((teachers, True), (recipes, False)):
            missing = [m for m in group if m not in finished]
            if missing:
                sweep = [f"{args.split_key}={split}", f"+recipe={','.join(missing)}"]
                study.launch(sweep, out / f"split{split}", as_teacher)
    results = Results(study.runs(), args.split_key, args.splits)
    if results.missing(methods):
        print("other shards are still running: run again without --shard for the table")
        return
    print(results.report(recipes, out, args.plot, study))
    for pair in args.compare:
        a, b = pair.split(":")
        print(f"{a} - {b}: {paired_text(results.accuracies(a), results.accuracies(b))}")


def done(runs: pd.DataFrame, split_key: str, split: int) -> set[str]:
    """The recipes with a finished run on ``split``."""
    if runs.empty:
        return set()
    on_split = runs[runs[f"params.{split_key}"] == str(split)]
    return set(on_split["tags.recipe"])


class Results:
    """The study's finished runs, by (recipe, split): its metrics."""

    def __init__(self, runs: pd.DataFrame, split_key: str, splits: int) -> None:
        self.splits = splits
        self.metrics: dict[tuple[str, int], dict[str, float]] = {}
        for _, row in runs.iterrows():
            split = int(row[f"params.{split_key}"])
            metrics = {k.removeprefix("metrics."): v for k, v in row.items() if "metrics." in k}
            self.metrics.setdefault((row["tags.recipe"], split), metrics)  # newest first
        self.data = runs["tags.data"].iloc[0] if len(runs) else "?"

    def missing(self, methods: list[str]) -> bool:
        return any((m, s) not in self.metrics for m in methods for s in range(self.splits))

    def accuracies(self, method: str, key: str = "test_acc") -> np.ndarray:
        return np.array([self.metrics[(method, s)][key] for s in range(self.splits)])

    def report(self, recipes: list[str], out: Path, plot_copy: Path | None, study: Study) -> str:
        """The markdown table and the paired-difference plot, written to disk and MLflow."""
        teacher = self.accuracies("teacher")
        rows = {"teacher (seed 0, the students' teacher)": ("teacher", "test_acc")}
        ensembles = [r for r in recipes if METHODS[r].teachers]
        if ensembles:  # the ensemble's own accuracy, as logged by a run that distilled from it
            rows["teacher, seed 1"] = ("teacher_seed1", "test_acc")
            rows["teacher ensemble (seeds 0, 1)"] = (ensembles[0], "teacher_test_acc")
        rows["teacher, early-stopping recipe"] = ("teacher_early", "test_acc")
        rows |= {r: (r, "test_acc") for r in recipes}
        lines = [
            f"{self.data}, {self.splits} splits; test accuracy %, mean [95 % CI]; paired "
            "differences in points, mean [95 % CI], Wilcoxon signed-rank p, wins/ties",
            "",
            "| method | params | fp32 bytes | test accuracy | "
            + " | ".join(f"vs {b}" for b in BASELINES)
            + " | vs teacher |",
            "|---" * (5 + len(BASELINES)) + "|",
        ]
        diffs: dict[str, dict[str, np.ndarray]] = {b: {} for b in BASELINES}
        for name, (method, key) in rows.items():
            acc = self.accuracies(method, key)
            own = key == "test_acc"  # the ensemble row shows its own accuracy, not its size
            first = self.metrics[(method, 0)]
            cells = [
                f"{int(first['params']):,}" if own else "",
                f"{int(first['size_fp32_bytes']):,}" if own else "",
                pct(mean_ci(acc)),
            ]
            for kind in BASELINES:
                base = getattr(METHODS[method], kind) if own and method in METHODS else None
                if base is None or base not in recipes:
                    cells.append("")
                    continue
                diffs[kind][name] = acc - self.accuracies(base)
                cells.append(paired_text(acc, self.accuracies(base)))
            cells.append("" if method == "teacher" and own else paired_text(acc, teacher))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        table = "\n".join(lines)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(table + "\n")
        self._log(study, table, rows)
        diffs = {k: d for k, d in diffs.items() if d}
        if diffs:  # none when no recipe has a baseline among those run
            fig = _plot(diffs, self.data)
            for path in (out / "paired_differences.png", plot_copy):
                if path:
                    fig.savefig(path, dpi=120, bbox_inches="tight")
            study.client.log_figure(study.parent, fig, "paired_differences.png")
            plt.close(fig)
        study.finish()
        return table

    def _log(self, study: Study, table: str, rows: dict) -> None:
        study.client.log_text(study.parent, table, "kd_study.md")
        study.client.set_tag(study.parent, "splits", str(self.splits))
        study.client.set_tag(study.parent, "methods", ",".join(rows))
        for method, key in rows.values():
            ci = mean_ci(self.accuracies(method, key))
            study.client.log_metric(study.parent, f"{method}.{key}.mean", ci.mean)


def _plot(diffs: dict[str, dict[str, np.ndarray]], data: str):
    """Per baseline, each split's paired difference (dots) with the mean and its 95 % interval."""
    rows = max(len(d) for d in diffs.values())
    fig, axes = plt.subplots(
        1,
        len(diffs),
        figsize=(6 * len(diffs), 0.8 + 0.5 * rows),
        squeeze=False,
        sharex=True,
        layout="constrained",  # room for each panel's method names
    )
    for ax, (kind, by_method) in zip(axes[0], diffs.items(), strict=True):
        for i, d in enumerate(by_method.values()):
            ci = mean_ci(d)
            jitter = np.linspace(-0.15, 0.15, len(d))
            ax.scatter(100 * d, np.full(len(d), i) + jitter, s=12, alpha=0.6)
            ax.errorbar(
                100 * ci.mean,
                i,
                xerr=[[100 * (ci.mean - ci.low)], [100 * (ci.high - ci.mean)]],
                fmt="D",
                color="black",
                capsize=4,
            )
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(range(len(by_method)), list(by_method))
        ax.invert_yaxis()
        ax.set_xlabel(f"test accuracy minus {kind}'s (same size, same split), points")
        ax.set_title(f"{data}: vs {kind}")
    return fig


if __name__ == "__main__":
    main()
