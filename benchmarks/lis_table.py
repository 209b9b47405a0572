"""Teacher, distilled student and scratch student on the real LIS data over several split seeds.

Each (model, split) is a normal pipeline run, logged to MLflow like any other (a split's teacher
is trained once and stored, so re-running with other student settings reuses it); this script prints
the table that goes into the README: mean +/- std test accuracy, parameters and bytes, plus the
paired (same split) difference between the distilled and the scratch student.

Usage: python benchmarks/lis_table.py [--seeds 5] [hydra overrides for every run...]
The LIS copy is read from $SIGNDISTILL_LIS_ROOT or ../shared/datasets/lis-emg-imu.
"""

from __future__ import annotations

import argparse

import numpy as np

from signdistill.pipeline import run

from common import config, lis_root, mean_std, stored_teacher

STUDENTS = {
    "student, KD": ["model=student", "distill=kd"],
    "student, scratch": ["model=student", "distill=none"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args, overrides = parser.parse_known_args()
    base = ["data=lis", f"data.source.root={lis_root()}", "trainer.enable_progress_bar=false"]
    results: dict[str, list[dict]] = {"teacher": [], **{name: [] for name in STUDENTS}}
    for seed in range(args.seeds):
        split = [*base, f"data.split_seed={seed}"]
        results["teacher"].append(stored_teacher(config(*split, *overrides)).metrics)
        for name, extra in STUDENTS.items():
            results[name].append(run(config(*split, *extra, *overrides)))
        print(
            f"split {seed}: "
            + ", ".join(f"{k} {v[-1]['test_acc']:.4f}" for k, v in results.items())
        )

    print(f"\nLIS, {args.seeds} stratified 70/10/20 splits (data.split_seed=0..{args.seeds - 1})")
    print("| model | params | fp32 file bytes | test accuracy % (mean +/- std) |")
    print("|---|---|---|---|")
    for name, rs in results.items():
        params = int(rs[0]["params"])
        size = int(rs[0]["size_file_bytes"])
        print(f"| {name} | {params:,} | {size:,} | {mean_std([r['test_acc'] for r in rs])} |")
    kd = np.array([r["test_acc"] for r in results["student, KD"]])
    scratch = np.array([r["test_acc"] for r in results["student, scratch"]])
    teacher = np.array([r["test_acc"] for r in results["teacher"]])
    diff = kd - scratch
    print(
        f"\npaired KD - scratch: {100 * diff.mean():+.1f} +/- {100 * diff.std(ddof=1):.1f} points "
        f"(KD better on {(diff > 0).sum()} of {len(diff)} splits, tied on {(diff == 0).sum()})"
    )
    print(f"paired teacher - KD student: {100 * (teacher - kd).mean():+.1f} points")


if __name__ == "__main__":
    main()
