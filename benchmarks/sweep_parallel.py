"""Trials per hour of a short screening sweep: one trial at a time against two side by side.

Three sides, each a sweep of N trials of `+sweeps=student_shape_pareto` on tiny simulator data
(one split, the screening schedule cut to EPOCHS epochs), started from a fresh folder whose study
(and its MLflow run) was created just before, untimed; the dataset and the split's teacher are
stored once beforehand and shared by every side, so no trial trains a teacher:

- basic: Hydra's basic launcher, one trial at a time (one process, N trials);
- joblib: `hydra/launcher=joblib hydra.sweeper.n_jobs=2` (one process, rounds of two trials);
- journal: two worker processes on one journal file (`hydra.sweeper.storage=journal://...`),
  N/2 trials each, the basic launcher in each.

Each trial runs with one torch thread (every process gets `OMP_NUM_THREADS=1`, which
`threads=auto` leaves to torch; the sweeper also sets `threads=1` for the joblib side's
side-by-side trials). The sides are interleaved round by round (A, B, C,
then C, B, A, ...: ``common.interleave``); each side's time is the wall time from starting its
process(es) to the last one's exit. Printed: each side's trials per hour (median over rounds) and
its throughput over the basic launcher's (the median of per-round time ratios, with their range).

Usage: python benchmarks/sweep_parallel.py [N=6] [repeats=3] [hydra overrides for every sweep...]
Every run goes to a temporary folder; nothing is written to the checkout's mlruns/.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import ROOT, interleave, ratio, timed

# Epochs of the screening schedule (conf/train/screen.yaml), one optimizer step each on this data:
# a trial of about 25 s on one core, most of it training (a LIS screening trial: 3 runs of ~18 s)
EPOCHS = 300
TINY = [  # 60 recordings of 4 signs; a small teacher, trained once by the warm-up sweep
    "data.source.n_signs=4",
    "data.source.n_subjects=3",
    "data.source.n_repetitions=5",
    "data.source.n_families=2",
    "teacher.train.max_epochs=1",
    "teacher.train.min_steps=0",
    "teacher.model.conv1=4",
    "teacher.model.conv2=4",
    "teacher.model.hidden=8",
    "trainer.enable_progress_bar=false",
]
SWEEP = [
    "+sweeps=student_shape_pareto",
    "hydra.sweeper.repeat_values=[0]",  # one split: a trial is one run
    f"train.max_epochs={EPOCHS}",
    "train.min_steps=0",
]


def command(root: Path, shared: Path, n: int, *overrides: str) -> list[str]:
    """`python src/train.py -m +sweeps=student_shape_pareto ...`, rooted at ``root``."""
    return [
        sys.executable,
        str(ROOT / "src" / "train.py"),
        "-m",
        *SWEEP,
        *TINY,
        f"paths.root={root}",
        f"paths.cache={shared}/cache",
        f"paths.teachers={shared}/teachers",
        f"hydra.sweep.dir={root}/multirun/{time.monotonic_ns()}",
        f"hydra.sweeper.n_trials={n}",
        *overrides,
    ]


def environment() -> dict[str, str]:
    """This checkout's sources first, one OpenMP thread per process (as a cluster job gets)."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def sweeps(root: Path, shared: Path, n: int, workers: int, overrides: list[str]) -> None:
    """``workers`` concurrent sweeps of ``n`` trials each in ``root``; raises if one fails."""
    procs = [
        subprocess.Popen(
            command(root, shared, n, *overrides),
            cwd=root,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    errors = [p.communicate()[1] for p in procs]
    for p, err in zip(procs, errors, strict=True):
        if p.returncode:
            raise SystemExit(f"{err.decode()[-3000:]}\nexit code {p.returncode}: {p.args}")


def side(tmp: Path, name: str, n: int, workers: int, overrides: list[str]) -> Callable[[], float]:
    """One side: each call creates a fresh study in a new folder (untimed), then times the
    sweep of ``n`` trials (split among ``workers`` processes)."""
    count = iter(range(1_000_000))

    def measure() -> float:
        root = tmp / f"{name}-{next(count)}"
        root.mkdir()
        storage = [f"hydra.sweeper.storage=journal://{root}/optuna.log"] if workers > 1 else []
        args = [*overrides, *storage]
        sweeps(root, tmp / "shared", 0, 1, args)  # the study and its MLflow run, untimed
        seconds = timed(lambda: sweeps(root, tmp / "shared", n // workers, workers, args))()
        print(f"  {root.name}: {seconds:.0f} s", file=sys.stderr, flush=True)
        return seconds

    return measure


def main(n: int, repeats: int, extra: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        (tmp / "warm-up").mkdir()
        # one trial: the dataset and the split's teacher, stored for every side
        sweeps(tmp / "warm-up", tmp / "shared", 1, 1, extra)
        sides = {
            "basic": side(tmp, "basic", n, 1, extra),
            "joblib": side(
                tmp, "joblib", n, 1, ["hydra/launcher=joblib", "hydra.sweeper.n_jobs=2", *extra]
            ),
            "journal": side(tmp, "journal", n, 2, extra),
        }
        times = interleave(sides, repeats, warmup=0)
    for name, seconds in times.items():
        per_hour = 3600 * n / statistics.median(seconds)
        print(
            f"{name}: {n} trials in {', '.join(f'{s:.0f}' for s in seconds)} s; "
            f"{per_hour:.0f} trials/hour (median)"
        )
    for name in ("joblib", "journal"):
        print(f"throughput {name} / basic: {ratio(times, 'basic', name)} (target >= 1.6)")


if __name__ == "__main__":
    args = sys.argv[1:]
    n_trials = int(args.pop(0)) if args and args[0].isdigit() else 6
    n_repeats = int(args.pop(0)) if args and args[0].isdigit() else 3
    main(n_trials, n_repeats, args)
