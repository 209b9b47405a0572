"""The accuracy-size front of real data: the shape search's front, retrained and reported honestly.

1. **Search** (not this script): ``python src/train.py -m +sweeps=student_shape_pareto data=lis``,
   two workers, screens student shapes on the short schedule over the search splits.
2. **Retrain**: this script reads the search's Optuna study, takes its screening front (the
   Pareto-optimal trials by mean validation accuracy of the deployed file and its bytes) and, for
   the rank check, more trials spread over the screening accuracy (``--shapes``, at least 12
   shapes in all), and retrains each on the full recipe (``train=student``: 300 epochs, consistent
   KD) on held-out split seeds that the search never saw, with the reference models: the teacher
   (fp32 and int8), the seed student (``kd_consistent``), ``student_tiny`` (``tiny_kd_consistent``)
   and the teacher pruned by each of ``--prune-amounts`` (sparsity training with local attenuation,
   KD recovery; the sparse teacher is shared). One Hydra multirun per method over its missing
   splits, tagged ``study=front_<data>`` and ``method=<name>``, nested in the study's MLflow run.
3. **Report**: per model its shape, parameters, deployed bytes, test accuracy of the deployed file
   (mean, 95 % interval) and the paired difference to the fp32 teacher on the same splits; the plot
   (deployed bytes on a log axis; the front as a step line; the references marked); the Spearman
   rank correlation of screening accuracy with full-recipe test accuracy, with 1 and with all
   search repeats; how the screening front moves with 1 repeat instead of all. Written to ``--out``
   and to the study's MLflow run. Selection never uses test accuracy: the front is chosen by
   validation accuracy in the search; test accuracy is only reported.

Re-running launches only what has not finished; ``--shard i/n`` takes every n-th held-out split.

Usage: python studies/front_study.py [--splits 100,101,102,103,104] [--shapes 12]
       [--storage URL] [--prune-amounts 0.5,0.7,0.75,0.85] [--pruned "prune.* ..."]
       [--plot docs/img/front_lis.png]
       [--shard i/n] [--first 23,22] [--partial] [hydra overrides for every run...]
       [--shape NAME=OVERRIDES ...] [--no-search]: given shapes, with or without a search study
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
from scipy.stats import spearmanr

from signdistill.overrides import override_value
from signdistill.pareto import hypervolume, pareto_mask
from signdistill.stats import mean_ci

from study import ROOT, Study, lis_root, paired_text, pct

DIRECTIONS = ["maximize", "minimize"]  # the search's objectives: accuracy, deployed bytes
ACC, BYTES = "test_acc_deployed", "size_deployed_bytes"
WITHIN = 0.01  # the size target's tolerance: a model counts if at most 1 point below the teacher


@dataclass(frozen=True)
class Method:
    """One model of the report: how it is trained, and what it is in the table."""

    name: str
    overrides: tuple[str, ...]
    kind: str  # teacher | reference | front | rank-check
    screening: tuple[float, ...] = ()  # a search trial's objectives (mean over repeats)
    first_repeat: tuple[float, ...] = ()  # the same with the first search split only


def main() -> None:
    args, overrides = arguments()
    if not any(o.startswith("data=") for o in overrides):
        overrides = ["data=lis", f"data.source.root={lis_root()}", *overrides]
    data = next(o.removeprefix("data=") for o in overrides if o.startswith("data="))
    teacher = next((o.split("=", 1)[1] for o in overrides if o.startswith("model@teacher")), "")
    name = args.search_study or f"student_shape_pareto_{data}_{teacher or 'teacher'}"
    trials = [] if args.no_search else search_trials(args.storage, name)
    retrained = chosen(trials, args.shapes) + [given(spec) for spec in args.shape]
    first = [f"trial-{n}" for n in args.first.split(",") if n]
    retrained.sort(key=lambda m: first.index(m.name) if m.name in first else len(first))
    methods = [*references(args.prune_amounts, args.pruned), *retrained]
    study = Study(args.study or f"front_{data}" + (f"_{teacher}" if teacher else ""), overrides)
    out = args.out or ROOT / "mlruns/studies" / study.name
    shard, shards = (int(v) for v in args.shard.split("/"))
    splits = [int(s) for s in args.splits.split(",")]
    if not args.partial:
        launch_missing(study, methods, splits[shard::shards], out)
    runs = study.runs()
    complete = [m for m in methods if not set(splits) - done(runs, m.name)]
    if len(complete) < len(methods) and not (args.partial and methods[0] in complete):
        print("other shards are still running: run again without --shard for the report")
        return
    methods = complete  # all of them, unless --partial reports the finished ones so far
    searched = [_trial_method(t, "search") for t in trials]
    report = Report(runs, methods, splits, args.reference, searched)
    print(report.write(out, args.plot, study))


def launch_missing(study: Study, methods: list[Method], splits: list[int], out: Path) -> None:
    """One Hydra multirun per method over those of ``splits`` it has not finished."""
    for method in methods:
        missing = [s for s in splits if s not in done(study.runs(), method.name)]
        if missing:
            sweep = [f"data.split_seed={','.join(map(str, missing))}", *method.overrides]
            as_teacher = method.kind == "teacher"
            study.launch(sweep, out / method.name, as_teacher, {"method": method.name})


def arguments() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="100,101,102,103,104", help="held-out split seeds")
    parser.add_argument("--shapes", type=int, default=12, help="fewest search trials retrained")
    parser.add_argument("--storage", default=f"sqlite:///{ROOT}/mlruns/optuna.db")
    parser.add_argument(
        "--search-study", help="default: student_shape_pareto_<data>_<teacher model name>"
    )
    parser.add_argument(
        "--study", help="this study's name; default: front_<data>[_<teacher>] (a front per teacher)"
    )
    parser.add_argument(
        "--prune-amounts", default="0.5,0.7,0.75,0.85", help="one pruned teacher each"
    )
    parser.add_argument(
        "--pruned", default="", help="more overrides for the pruned teachers (after prune=slim)"
    )
    parser.add_argument(
        "--reference",
        default="0,200000",
        help="hypervolume reference point: accuracy, bytes (the search's)",
    )
    parser.add_argument("--out", type=Path, help="default: mlruns/studies/front_<data>")
    parser.add_argument("--plot", type=Path, help="also write the plot here (e.g. docs/img/)")
    parser.add_argument("--shard", default="0/1", help="i/n: every n-th held-out split")
    parser.add_argument(
        "--first", default="", help="search trial numbers to retrain first, e.g. near a size target"
    )
    parser.add_argument(
        "--shape",
        action="append",
        default=[],
        help="NAME=OVERRIDES: a shape to retrain besides the search's (repeatable), e.g. "
        "'s8-17-28=model.conv1=8 model.conv2=17 model.hidden=28 model.lstm_layers=1'",
    )
    parser.add_argument(
        "--no-search",
        action="store_true",
        help="no search study: retrain the references and the --shape models only",
    )
    parser.add_argument(
        "--partial",
        action="store_true",
        help="launch nothing; report the models finished on every split (the teacher one of them)",
    )
    return parser.parse_known_args()


def search_trials(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    """The search's completed trials."""
    study = optuna.load_study(study_name=name, storage=storage)
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def references(amounts: str, pruned: str) -> list[Method]:
    """The teacher (first: the students' teacher on each split), then the reference models."""
    return [
        Method("teacher", ("+recipe=teacher",), "teacher"),
        Method("seed_student", ("+recipe=kd_consistent",), "reference"),
        Method("student_tiny", ("+recipe=tiny_kd_consistent",), "reference"),
        *(
            Method(
                f"pruned_teacher_{a}",
                ("model=teacher", "prune=slim", f"prune.amount={a}", *pruned.split()),
                "reference",
            )
            for a in amounts.split(",")
            if a
        ),
    ]


def chosen(trials: list[optuna.trial.FrozenTrial], shapes: int) -> list[Method]:
    """The screening front, and for the rank check more trials spread evenly over the screening
    accuracy, until ``shapes`` trials in all."""
    front = pareto_mask([t.values for t in trials], DIRECTIONS)
    picked = [t for t, on in zip(trials, front, strict=True) if on]
    others = sorted((t for t, on in zip(trials, front, strict=True) if not on), key=_accuracy)
    need = max(0, shapes - len(picked))
    if need and others:
        spots = np.linspace(0, len(others) - 1, min(need, len(others)))
        picked += [others[i] for i in sorted({round(x) for x in spots})]
    on_front = {t.number for t, on in zip(trials, front, strict=True) if on}
    picked.sort(key=_accuracy, reverse=True)  # the most accurate first: a study stopped early
    return [_trial_method(t, "front" if t.number in on_front else "rank-check") for t in picked]


def given(spec: str) -> Method:
    """A ``--shape NAME=OVERRIDES`` model: retrained like a search trial, with no screening."""
    name, _, overrides = spec.partition("=")
    return Method(name, tuple(overrides.split()), "front")


def _accuracy(trial: optuna.trial.FrozenTrial) -> float:
    return trial.values[0]


def _trial_method(trial: optuna.trial.FrozenTrial, kind: str) -> Method:
    """A search trial retrained on the full recipe: its shape and KD settings, nothing else."""
    overrides = tuple(f"{k}={override_value(v)}" for k, v in sorted(trial.params.items()))
    first = trial.user_attrs.get("per_repeat", [trial.values])[0]
    return Method(f"trial-{trial.number}", overrides, kind, tuple(trial.values), tuple(first))


def done(runs: pd.DataFrame, method: str) -> set[int]:
    """The held-out splits on which ``method`` has a finished run."""
    if runs.empty or "tags.method" not in runs:
        return set()
    mine = runs[runs["tags.method"] == method]
    return {int(s) for s in mine["params.data.split_seed"]}


class Report:
    """The retrained models' results by method and split, and what the study concludes."""

    def __init__(
        self,
        runs: pd.DataFrame,
        methods: list[Method],
        splits: list[int],
        reference: str,
        searched: list[Method],
    ) -> None:
        self.methods = methods
        self.searched = searched  # every completed search trial
        self.splits = splits
        self.reference = [float(v) for v in reference.split(",")]
        self.metrics: dict[tuple[str, int], dict[str, float]] = {}
        for _, row in runs.iterrows():  # newest first: the first finished run of a pair counts
            key = (row["tags.method"], int(row["params.data.split_seed"]))
            metrics = {k.removeprefix("metrics."): v for k, v in row.items() if "metrics." in k}
            self.metrics.setdefault(key, metrics | {"shape": _shape(row)})

    def values(self, method: str, key: str) -> np.ndarray:
        return np.array([self.metrics[(method, s)][key] for s in self.splits])

    def rows(self) -> list[dict]:
        """One row per model: the teacher twice (fp32 and int8), then every method."""
        teacher = self.values("teacher", "test_acc")
        rows = [
            self._row("teacher", "teacher (fp32 ONNX)", "test_acc", "size_onnx_bytes", teacher),
            self._row("teacher", "teacher (int8)", "test_acc_int8", "size_int8_bytes", teacher),
        ]
        for m in self.methods[1:]:
            rows.append(self._row(m.name, m.name, ACC, BYTES, teacher) | {"kind": m.kind})
        return rows

    def _row(self, method: str, label: str, acc: str, size: str, teacher: np.ndarray) -> dict:
        accuracy = self.values(method, acc)
        first = self.metrics[(method, self.splits[0])]
        return {
            "label": label,
            "kind": "teacher",
            "shape": first["shape"],
            "params": int(first["params"]),
            "bytes": int(first[size]),
            "acc": mean_ci(accuracy),
            "vs_teacher": "" if label.endswith("(fp32 ONNX)") else paired_text(accuracy, teacher),
            "diff": float((accuracy - teacher).mean()),
        }

    def rank_check(self) -> tuple[float, float, int]:
        """Spearman's rho of screening accuracy (all repeats; the first only) against full-recipe
        held-out test accuracy, over the retrained search trials; and how many there are."""
        trials = [m for m in self.methods if m.screening]
        full = [self.values(m.name, ACC).mean() for m in trials]
        rho_all = spearmanr([m.screening[0] for m in trials], full).statistic
        rho_one = spearmanr([m.first_repeat[0] for m in trials], full).statistic
        return float(rho_all), float(rho_one), len(trials)

    def write(self, out: Path, plot_copy: Path | None, study: Study) -> str:
        """The table, the rank check and the plot: to ``out``, the console and MLflow."""
        rows = self.rows()
        text = "\n".join([_table(rows, len(self.splits)), "", *self.conclusions(rows)])
        out.mkdir(parents=True, exist_ok=True)
        (out / "front.md").write_text(text + "\n")
        fig = _plot(rows)
        for path in (out / "front.png", plot_copy):
            if path:
                fig.savefig(path, dpi=130, bbox_inches="tight")
        study.client.log_text(study.parent, text, "front.md")
        study.client.log_figure(study.parent, fig, "front.png")
        plt.close(fig)
        study.finish()
        return text

    def conclusions(self, rows: list[dict]) -> list[str]:
        """The rank check, and how the search's front moves with one repeat instead of all."""
        if not self.searched:
            return [*_targets(rows), "No search study: no rank check, no screening front."]
        rho_all, rho_one, n = self.rank_check()
        mean = [m.screening for m in self.searched]
        first = [(m.first_repeat[0], m.screening[1]) for m in self.searched]
        fronts = [pareto_mask(v, DIRECTIONS) for v in (mean, first)]
        both = sum(a and b for a, b in zip(*fronts, strict=True))
        hv = [hypervolume(np.array(v), DIRECTIONS, self.reference) for v in (mean, first)]
        return [
            *_targets(rows),
            f"Rank check over {n} retrained search trials: Spearman rho of screening validation "
            f"accuracy with full-recipe held-out test accuracy = {rho_all:.2f} (mean over the "
            f"search repeats), {rho_one:.2f} (first search split only).",
            f"Screening front over all {len(mean)} search trials: {sum(fronts[0])} trials with "
            f"the mean of the repeats, {sum(fronts[1])} with the first split only, {both} on "
            f"both; hypervolume (reference {self.reference}) {hv[0]:.0f} vs {hv[1]:.0f}.",
        ]


def _targets(rows: list[dict]) -> list[str]:
    """The issue's targets read off the table: the smallest model within a point of the fp32
    teacher (any path, and the searched shapes alone), and what dominates the seed student."""
    deployed = [r for r in rows if not r["label"].endswith("(fp32 ONNX)")]
    searched = [r for r in deployed if r["kind"] in ("front", "rank-check")]
    lines = []
    for who, group in (("any path", deployed), ("retrained search trials only", searched)):
        close = [r for r in group if r["diff"] >= -WITHIN]
        best = min(close, key=lambda r: r["bytes"], default=None)
        found = (
            f"{best['label']}, {best['bytes']:,} bytes, {best['diff'] * 100:+.1f}"
            if best
            else "none"
        )
        lines.append(
            f"Smallest model ({who}) within {100 * WITHIN:.1f} point of the fp32 teacher "
            f"(mean paired difference): {found}."
        )
    seed = next(r for r in rows if r["label"] == "seed_student")
    better = [
        r for r in searched if r["bytes"] <= seed["bytes"] and r["acc"].mean > seed["acc"].mean
    ]
    lines.append(
        f"Retrained search trials that dominate the seed student ({seed['bytes']:,} bytes, "
        f"{100 * seed['acc'].mean:.1f} %): {len(better)}"
        + (f", the smallest {min(better, key=lambda r: r['bytes'])['label']}." if better else ".")
    )
    return lines


def _shape(row: pd.Series) -> str:
    """conv1/conv2/hidden x layers, kernel, from the run's architecture params."""
    conv = str(row.get("params.arch.conv_channels", "")).strip("[]").replace(", ", "/")
    hidden = str(row.get("params.arch.hidden_sizes", "")).strip("[]").split(", ")
    return f"{conv}/{hidden[0]}x{len(hidden)} k{row.get('params.arch.kernel_size', '?')}"


def _table(rows: list[dict], splits: int) -> str:
    lines = [
        f"{splits} held-out splits; test accuracy % of the deployed file, mean [95 % CI]; paired "
        "difference to the fp32 teacher in points, mean [95 % CI], Wilcoxon p, wins/ties",
        "",
        "| model | kind | shape (conv1/conv2/hidden x layers, kernel) | params | deployed bytes "
        "| test accuracy | vs teacher |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["bytes"]):
        lines.append(
            f"| {r['label']} | {r['kind']} | {r['shape']} | {r['params']:,} | {r['bytes']:,} | "
            f"{pct(r['acc'])} | {r['vs_teacher']} |"
        )
    return "\n".join(lines)


def _plot(rows: list[dict]):
    """Deployed bytes (log) against test accuracy with 95 % intervals; the front as a step line
    through the non-dominated retrained trials; the references marked and named."""
    fig, ax = plt.subplots(figsize=(8, 5.5), layout="constrained")
    trials = [r for r in rows if r["kind"] in ("front", "rank-check")]
    front = _front(trials)
    for group, color in ((trials, "0.6"), (front, "C3")):
        for r in group:
            _point(ax, r, color=color, fmt="o")
    _steps(ax, front, color="C3", label="front (retrained search trials)")
    deployed = [r for r in rows if not r["label"].endswith("(fp32 ONNX)")]
    _steps(ax, _front(deployed), color="0.3", linestyle="--", label="front (every deployed model)")
    for i, r in enumerate(x for x in rows if x["kind"] in ("teacher", "reference")):
        _point(ax, r, color=f"C{i % 3}", fmt="s")
        ax.annotate(
            r["label"],
            (r["bytes"], 100 * r["acc"].mean),
            textcoords="offset points",
            xytext=(6, -12 if i % 2 else 4),  # alternate sides: neighbours do not overlap
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xlabel("deployed file, bytes (log scale)")
    ax.set_ylabel("test accuracy of the deployed file, % (95 % CI)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")
    return fig


def _front(rows: list[dict]) -> list[dict]:
    """The rows no other row beats on both mean accuracy and bytes, smallest first."""
    on = pareto_mask([(r["acc"].mean, r["bytes"]) for r in rows], DIRECTIONS)
    return sorted((r for r, o in zip(rows, on, strict=True) if o), key=lambda r: r["bytes"])


def _steps(ax, front: list[dict], **style) -> None:
    """A front as a step line: each model's accuracy holds until a larger one beats it."""
    ax.step(
        [r["bytes"] for r in front], [100 * r["acc"].mean for r in front], where="post", **style
    )


def _point(ax, row: dict, color: str, fmt: str) -> None:
    ci = row["acc"]
    ax.errorbar(
        row["bytes"],
        100 * ci.mean,
        yerr=[[100 * (ci.mean - ci.low)], [100 * (ci.high - ci.mean)]],
        fmt=fmt,
        color=color,
        capsize=3,
        ms=5,
    )


if __name__ == "__main__":
    main()
