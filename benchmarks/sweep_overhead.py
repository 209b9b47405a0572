"""What the sweeper costs, and whether two parallel trials beat one at a time on 2 cores.

1. Overhead: per round, the wall time of an N-trial sweep (`python src/train.py -m
   +sweeps=student_pareto`, one process, the study continued from round to round) over the sum
   of the same N configs trained directly with the pipeline's `run()` in this process, right
   after it (the direct side needs the configs the sweep sampled). Both use the same stored
   teacher, trained beforehand. Target <= 1.3.
2. Parallelism: per round, 2N trials by one worker (default threads) against two workers sharing
   a study (N each, one thread each: OMP_NUM_THREADS=1); the two sides interleaved round by round
   (see ``common.interleave``).

Each ratio is the median of the per-round ratios with their range.

Usage: python benchmarks/sweep_overhead.py [N=3] [repeats=3] [hydra overrides for every trial...]
Every run goes to a temporary folder; nothing is written to the checkout's mlruns/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from signdistill.pipeline import run

from common import ROOT, config, interleave, ratio, timed

# 5-epoch trials; the teacher is trained beforehand with the same (short) recipe, so that no
# trial trains one: `model=teacher train.max_epochs=5` stores the teacher that
# `teacher.train.max_epochs=5` students look up.
SHORT = [
    "train.max_epochs=5",
    "teacher.train.max_epochs=5",
    "export.latency_runs=0",
    "trainer.enable_progress_bar=false",
]
STUDY = "student_pareto_isl_sim"


def sweep(root: Path, n: int, overrides: list[str], threads: int | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [
        sys.executable,
        str(ROOT / "src" / "train.py"),
        "-m",
        "+sweeps=student_pareto",
        f"paths.root={root}",
        f"hydra.sweep.dir={root}/multirun/{time.monotonic_ns()}",
        f"hydra.sweeper.n_trials={n}",
        *overrides,
    ]
    return subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def sweeps(root: Path, n: int, overrides: list[str], workers: int, threads: int | None) -> None:
    """``workers`` concurrent sweeps of ``n`` trials each on the study in ``root``."""
    procs = [sweep(root, n, overrides, threads) for _ in range(workers)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(err.decode()[-3000:])


def with_teacher(root: Path, overrides: list[str]) -> Path:
    """``root`` with the stored teacher every trial distills from."""
    run(config("model=teacher", f"paths.root={root}", *overrides))
    return root


def overhead(root: Path, n: int, repeats: int, overrides: list[str]) -> None:
    """Rounds of an n-trial sweep, then its n configs run directly."""
    storage = f"sqlite:///{root}/mlruns/optuna.db"
    swept, direct = [], []
    for _ in range(repeats):
        swept.append(timed(lambda: sweeps(root, n, overrides, 1, None))())
        trials = optuna.load_study(study_name=STUDY, storage=storage).trials[-n:]
        start = time.perf_counter()
        for trial in trials:
            params = [f"{k}={v}" for k, v in trial.params.items()]
            run(config("model=student", f"paths.root={root}", *overrides, *params))
        direct.append(time.perf_counter() - start)
    times = {"sweep": swept, "direct": direct}
    print(
        f"{n}-trial sweeps: {', '.join(f'{s:.1f}' for s in swept)} s; direct: "
        f"{', '.join(f'{s:.1f}' for s in direct)} s"
    )
    print(f"sweeper overhead (sweep / direct): {ratio(times, 'sweep', 'direct')} (target <= 1.3)")
    print(f"trials per hour at this trial length: {3600 * n * repeats / sum(swept):.0f}")


def parallel(tmp: Path, n: int, repeats: int, overrides: list[str]) -> None:
    """2n trials by one worker against two workers of n trials, interleaved."""
    one, two = (with_teacher(tmp / name, overrides) for name in ("one", "two"))
    sides: dict[str, Callable[[], float]] = {
        "1 worker": timed(lambda: sweeps(one, 2 * n, overrides, 1, None)),
        "2 workers": timed(lambda: sweeps(two, n, overrides, 2, 1)),
    }
    times = interleave(sides, repeats, warmup=0)
    for name, seconds in times.items():
        print(f"{2 * n} trials, {name}: {', '.join(f'{s:.1f}' for s in seconds)} s")
    print(f"parallel speed-up (1 worker / 2 workers): {ratio(times, '1 worker', '2 workers')}")


def main(n: int, repeats: int, extra: list[str]) -> None:
    overrides = [*SHORT, *extra]
    with tempfile.TemporaryDirectory() as tmp:
        overhead(with_teacher(Path(tmp) / "overhead", overrides), n, repeats, overrides)
        parallel(Path(tmp), n, repeats, overrides)


if __name__ == "__main__":
    args = sys.argv[1:]
    n_trials = int(args.pop(0)) if args and args[0].isdigit() else 3
    n_repeats = int(args.pop(0)) if args and args[0].isdigit() else 3
    main(n_trials, n_repeats, args)
