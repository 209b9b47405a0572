"""The default models on public UEA/UCR problems, each on its published train/test split, beside the
published 1-NN DTW, ROCKET and InceptionTime accuracies; and what the deployed int8 file costs.

The problems' ``.ts`` files ship inside the ``aeon`` wheel (never commit them; cite the archives):
    pip download --no-deps aeon==1.6.0 && unzip aeon-1.6.0-py3-none-any.whl 'aeon/datasets/data/*'
    python studies/public_study.py --root aeon/datasets/data [--problems ArrowHead,...] [--seeds 3]

**Runs**: per problem one study (``public_<Problem>``); per seed (the model seed and the validation
draw, ``seed`` = ``data.split_seed`` = k) one Hydra multirun of ``src/train.py`` for the teachers,
then one for the students, over the methods without a finished run, each tagged ``method=<name>``
and nested under the study's MLflow run. ``--shard i/n`` takes every n-th (problem, seed) pair.
**Report**: per problem and model, mean over the seeds: accuracy on its own training recordings
(how well it fits them), test accuracy of the fp32 model and of the deployed file (one recording at
a time), the fraction of classes it predicts at all on the test set; and the published figures.

Published figures (accuracy %, default split): 1-NN DTW of the UCR archive's ``DataSummary.csv``
(Dau et al. 2019; DTW with the learned warping window) and, for the multivariate problems, of the
UEA archive paper (Bagnall et al. 2018, DTW_D; BasicMotions from the default-split results of the
multivariate bake-off, Ruiz et al. 2021, ``tsml-eval`` ``results/tsml/MultivariateDefaultTrainTest
.csv``); ROCKET from ``angus924/rocket`` ``results/results_ucr.csv`` (mean of repeated runs) and the
bake-off; InceptionTime (an ensemble of 5 networks) from ``hfawaz/InceptionTime``
``results-InceptionTime-128.csv`` and ``results-mts.csv``. Full citations: README, "Public
problems". A figure the stored sources did not give is None.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from signdistill.stats import mean_ci

from study import ROOT, Study, pct


@dataclass(frozen=True)
class Problem:
    """A public problem: its data overrides and its published accuracies (%)."""

    overrides: tuple[str, ...] = ()
    dtw: float | None = None
    rocket: float | None = None
    inception: float | None = None


PROBLEMS = {
    "ArrowHead": Problem(dtw=80.00, rocket=81.43, inception=84.57),
    "GunPoint": Problem(dtw=91.33, rocket=100.0, inception=100.0),
    "ItalyPowerDemand": Problem(dtw=95.53, rocket=96.96, inception=96.50),
    # variable lengths (29-361 steps): resampled to one length
    "PickupGestureWiimoteZ": Problem(("data.source.length=180",), 66.00, 83.00, 76.00),
    "BasicMotions": Problem(dtw=97.5, rocket=100.0, inception=100.0),
    # variable lengths (7-29 steps): resampled to the longest
    "JapaneseVowels": Problem(("data.source.length=29",), 94.9, None, 99.19),
}
# method -> its overrides; teachers are trained (and stored) before the students that need them
TEACHERS = {
    "teacher": ("+recipe=teacher",),
    # a diagnostic: the teacher's recipe without mixup (the other augmentations kept)
    "teacher_no_mixup": ("+recipe=teacher", "train.augment.mixup=0"),
}
STUDENTS = {
    "student": ("+recipe=kd_consistent",),
    "student_tiny": ("+recipe=tiny_kd_consistent",),
    "student_tiny_scratch": ("+recipe=tiny_scratch_patient",),
}
COLUMNS = {  # report column -> metric
    "train acc": "train_acc",
    "test acc (fp32)": "test_acc",
    "test acc (deployed)": "test_acc_deployed",
    "classes predicted": "test_predicted_classes",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="folder of <Problem>/ folders")
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--shard", default="0/1", help="i/n: every n-th (problem, seed) pair")
    parser.add_argument("--out", type=Path, default=ROOT / "mlruns/studies/public")
    args, overrides = parser.parse_known_args()
    problems = args.problems.split(",")
    shard, shards = (int(v) for v in args.shard.split("/"))
    pairs = list(itertools.product(problems, range(args.seeds)))
    studies = {
        p: Study(f"public_{p}", [*data_overrides(args.root, p), *overrides]) for p in problems
    }
    for problem, seed in pairs[shard::shards]:
        launch_missing(studies[problem], seed, args.out / problem)
    tables = [report(p, studies[p].runs(), args.seeds) for p in problems]
    if any(t is None for t in tables):
        print("other shards are still running: run again without --shard for the report")
        return
    text = "\n".join(tables)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "public.md").write_text(text + "\n")
    print(text)


def data_overrides(root: Path, problem: str) -> list[str]:
    source = [f"data.source.root={root.resolve()}", f"data.source.name={problem}"]
    return ["data=ts", *source, *PROBLEMS[problem].overrides]


def launch_missing(study: Study, seed: int, out: Path) -> None:
    """The methods without a finished run on ``seed``: teachers first, for the students."""
    runs = study.runs()
    for methods, as_teacher in ((TEACHERS, True), (STUDENTS, False)):
        for method, recipe in methods.items():
            if seed not in done(runs, method):
                sweep = [f"seed={seed}", f"data.split_seed={seed}", *recipe]
                study.launch(sweep, out / f"seed{seed}", as_teacher, {"method": method})


def done(runs: pd.DataFrame, method: str) -> set[int]:
    """The seeds on which ``method`` has a finished run."""
    if runs.empty or "tags.method" not in runs:
        return set()
    return {int(s) for s in runs.loc[runs["tags.method"] == method, "params.seed"]}


def report(problem: str, runs: pd.DataFrame, seeds: int) -> str | None:
    """The problem's table, or None while a run is missing."""
    methods = [*TEACHERS, *STUDENTS]
    if any(set(range(seeds)) - done(runs, m) for m in methods):
        return None
    p = PROBLEMS[problem]
    published = ", ".join(
        f"{name} {value:.1f}"
        for name, value in (
            ("1-NN DTW", p.dtw),
            ("ROCKET", p.rocket),
            ("InceptionTime", p.inception),
        )
        if value is not None
    )
    lines = [
        f"**{problem}** ({seeds} seed(s); published: {published})",
        "",
        "| model | params | deployed bytes | " + " | ".join(COLUMNS) + " |",
        "|---" * (3 + len(COLUMNS)) + "|",
    ]
    for method in methods:
        rows = runs[(runs["tags.method"] == method) & runs["params.seed"].astype(int).lt(seeds)]
        cells = [f"{int(rows['metrics.params'].iloc[0]):,}"]
        cells.append(f"{int(rows['metrics.size_deployed_bytes'].iloc[0]):,}")
        cells += [pct(mean_ci(np.asarray(rows[f"metrics.{m}"]))) for m in COLUMNS.values()]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
