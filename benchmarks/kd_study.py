"""Does distillation earn its place? Every KD recipe against the same student from scratch and
against the teacher, paired over the same splits.

For each split: the stored teachers (seeds 0 and 1, and the early-stopping recipe; trained once,
reused by every recipe) and one pipeline run per recipe (``conf/recipe/<name>.yaml``). Reported
per method: mean test accuracy with a 95 % t interval; paired differences against the scratch
student of the same size on the fast recipe and on the default (patient, augmented) one, and against
the teacher (mean, 95 % interval, two-sided Wilcoxon signed-rank p, wins/ties); parameters and
fp32 bytes. The table (markdown) and a plot of the paired differences go to ``--out`` and to an
MLflow run ``kd-study`` that every recipe run of the study is nested under.

Results are appended to ``<out>/results.jsonl`` as each run finishes: re-running the same command
skips what is done, so an interrupted study loses at most the run in progress.

The same runs as a plain Hydra sweep (one MLflow run each, no table):
    python src/train.py -m data=lis 'data.split_seed=range(10)' +recipe=scratch,kd,kd_consistent

Usage: python benchmarks/kd_study.py [--splits 10] [--recipes scratch,kd,...] [--out DIR]
       [--split-key data.split_seed] [--compare A:B ...] [hydra overrides for every run...]
LIS (the default data) is read from $SIGNDISTILL_LIS_ROOT or ../shared/datasets/lis-emg-imu.
The simulator, leaving one of its 5 subjects out per split (every training capped at 100 epochs):
    python benchmarks/kd_study.py --splits 5 --split-key data.fold \\
      --recipes scratch,kd,scratch_patient,kd_consistent \\
      data=isl_sim data.split=subject model.max_epochs=100 teacher.max_epochs=100
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
from filelock import FileLock

from signdistill import tracking
from signdistill.pipeline import run
from signdistill.stats import Interval, mean_ci, paired

from common import ROOT, config, lis_root, stored_teacher

RECIPES = (
    "scratch",
    "kd",
    "dkd",
    "kd_ensemble",
    "kd_patient",
    "scratch_patient",
    "kd_consistent",
    "tiny_scratch_patient",
    "tiny_kd_consistent",
)
# The teachers of each split, trained once and reused by every recipe: the one students distill
# from (seed 0), the ensemble's second member (only with an ensemble recipe), and the first,
# early-stopping teacher recipe.
TEACHERS = {
    "teacher_seed0": ["seed=0"],
    "teacher_seed1": ["seed=1"],
    "teacher_early": ["model@teacher=teacher_early"],
}
# Each distilled student is compared with the scratch student of its size trained on the fast
# recipe and on the default (patient, augmented) one (``tiny_`` recipes for the tiny student).
BASELINES = ("scratch", "scratch_patient")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated names")
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
    shard, shards = (int(v) for v in args.shard.split("/"))
    recipes = args.recipes.split(",")
    if not any(o.startswith("data=") for o in overrides):
        overrides = ["data=lis", f"data.source.root={lis_root()}", *overrides]
    study = Study(args.out, overrides)
    ensemble = any("ensemble" in r for r in recipes)
    teachers = {k: v for k, v in TEACHERS.items() if ensemble or k != "teacher_seed1"}
    for split in range(shard, args.splits, shards):
        on = [*overrides, f"{args.split_key}={split}", "trainer.enable_progress_bar=false"]
        for name, extra in teachers.items():
            study.result(name, split, lambda o=[*on, *extra]: stored_teacher(config(*o)).metrics)
        for recipe in recipes:
            study.result(recipe, split, lambda r=recipe, o=on: study.train([*o, f"+recipe={r}"]))
        print(study.progress(split), flush=True)
    if study.missing(args.splits, recipes):
        print("other shards are still running: run again without --shard for the table")
        return
    print(study.report(args.splits, recipes, args.plot))
    for pair in args.compare:
        a, b = pair.split(":")
        acc = (study.accuracies(m, args.splits) for m in (a, b))
        print(f"{a} - {b}: {_paired(*acc)}")


class Study:
    """The study's results on disk (one JSON line per finished run) and its MLflow parent run."""

    def __init__(self, out: Path | None, overrides: list[str]) -> None:
        self.cfg = config(*overrides)
        self.out = out = out or ROOT / "mlruns/studies" / f"kd_{self.cfg.data.name}"
        out.mkdir(parents=True, exist_ok=True)
        self.results_file = out / "results.jsonl"
        self.done: dict[tuple[str, int], dict] = {}
        if self.results_file.exists():
            for line in self.results_file.read_text().splitlines():
                row = json.loads(line)
                self.done[(row["method"], row["split"])] = row["metrics"]
        self.experiment = tracking.configure(
            self.cfg.logger.tracking_uri,
            self.cfg.logger.experiment_name,
            self.cfg.logger.artifact_root,
        )
        self.parent = self._parent_run(out / "mlflow_run_id")

    def _parent_run(self, id_file: Path) -> str:
        """The study's MLflow run, created once and resumed by id on later invocations (the lock
        keeps shards started together from creating one each)."""
        client = mlflow.MlflowClient()
        with FileLock(f"{id_file}.lock"):
            if id_file.exists():
                run_id = id_file.read_text().strip()
                client.update_run(run_id, status="RUNNING")
                return run_id
            created = client.create_run(
                self.experiment,
                run_name="kd-study",
                tags={"kind": "study", "data": self.cfg.data.name},
            )
            id_file.write_text(created.info.run_id)
            return created.info.run_id

    def train(self, overrides: list[str]) -> dict[str, float]:
        return run(config(*overrides, f"sweep.parent_run_id={self.parent}"))

    def result(self, method: str, split: int, compute) -> dict[str, float]:
        """The stored result of ``method`` on ``split``, computed and appended if missing."""
        if (method, split) not in self.done:
            metrics = {k: v for k, v in compute().items() if isinstance(v, int | float)}
            self.done[(method, split)] = metrics
            with self.results_file.open("a") as f:
                f.write(json.dumps({"method": method, "split": split, "metrics": metrics}) + "\n")
        return self.done[(method, split)]

    def missing(self, splits: int, recipes: list[str]) -> bool:
        return any((r, s) not in self.done for r in recipes for s in range(splits))

    def progress(self, split: int) -> str:
        accs = {m: r["test_acc"] for (m, s), r in self.done.items() if s == split}
        return f"split {split}: " + ", ".join(f"{m} {a:.3f}" for m, a in accs.items())

    def accuracies(self, method: str, splits: int, key: str = "test_acc") -> np.ndarray:
        return np.array([self.done[(method, s)][key] for s in range(splits)])

    def baseline(self, method: str, kind: str, recipes: list[str]) -> str | None:
        """The scratch recipe ``kind`` (or its ``tiny_`` variant) of the same size as ``method``."""
        size = self.done[(method, 0)]["params"]
        for r in recipes:
            if (
                r != method
                and r.removeprefix("tiny_") == kind
                and self.done[(r, 0)]["params"] == size
            ):
                return r
        return None

    def report(self, splits: int, recipes: list[str], plot_copy: Path | None) -> str:
        """The markdown table and the paired-difference plot, written to disk and MLflow."""
        teacher = self.accuracies("teacher_seed0", splits)
        rows = {"teacher (seed 0, the students' teacher)": ("teacher_seed0", "test_acc")}
        ensembles = [r for r in recipes if "ensemble" in r]
        if ensembles:  # the ensemble's own accuracy, as logged by a run that distilled from it
            rows["teacher, seed 1"] = ("teacher_seed1", "test_acc")
            rows["teacher ensemble (seeds 0, 1)"] = (ensembles[0], "teacher_test_acc")
        rows["teacher, early-stopping recipe"] = ("teacher_early", "test_acc")
        rows |= {r: (r, "test_acc") for r in recipes}
        lines = [
            f"{self.cfg.data.name}, {splits} splits; test accuracy %, mean [95 % CI]; paired "
            "differences in points, mean [95 % CI], Wilcoxon signed-rank p, wins/ties",
            "",
            "| method | params | fp32 bytes | test accuracy | "
            + " | ".join(f"vs {b}" for b in BASELINES)
            + " | vs teacher |",
            "|---" * (5 + len(BASELINES)) + "|",
        ]
        diffs: dict[str, dict[str, np.ndarray]] = {b: {} for b in BASELINES}
        for name, (method, key) in rows.items():
            acc = self.accuracies(method, splits, key)
            student = key == "test_acc"  # the ensemble row shows its own accuracy, not its size
            first = self.done[(method, 0)]
            cells = [
                f"{int(first['params']):,}" if student else "",
                f"{int(first['size_fp32_bytes']):,}" if student else "",
                _pct(mean_ci(acc)),
            ]
            for kind in BASELINES:
                base = self.baseline(method, kind, recipes) if student else None
                if base is None:
                    cells.append("")
                    continue
                scratch = self.accuracies(base, splits)
                diffs[kind][name] = acc - scratch
                cells.append(_paired(acc, scratch))
            cells.append("" if method == "teacher_seed0" and student else _paired(acc, teacher))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        table = "\n".join(lines)
        (self.out / "table.md").write_text(table + "\n")
        fig = _plot({k: d for k, d in diffs.items() if d}, self.cfg.data.name)
        fig.savefig(self.out / "paired_differences.png", dpi=120, bbox_inches="tight")
        if plot_copy:
            fig.savefig(plot_copy, dpi=120, bbox_inches="tight")
        self._log(table, fig, rows, splits)
        return table

    def _log(self, table: str, fig, rows: dict, splits: int) -> None:
        client = mlflow.MlflowClient()
        client.log_text(self.parent, table, "kd_study.md")
        client.log_figure(self.parent, fig, "paired_differences.png")
        plt.close(fig)
        client.set_tag(self.parent, "splits", str(splits))
        client.set_tag(self.parent, "methods", ",".join(rows))
        for method, key in rows.values():
            ci = mean_ci(self.accuracies(method, splits, key))
            client.log_metric(self.parent, f"{method}.{key}.mean", ci.mean)
        client.set_terminated(self.parent, "FINISHED")


def _pct(ci: Interval) -> str:
    return f"{100 * ci.mean:.1f} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def _paired(a: np.ndarray, b: np.ndarray) -> str:
    p = paired(a, b)
    d = p.diff
    return (
        f"{100 * d.mean:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}], "
        f"p={p.p_value:.3f}, {p.wins}/{p.ties}"
    )


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
