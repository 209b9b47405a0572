"""What the sweeper costs, and whether two parallel trials beat one at a time on 2 cores.

1. Overhead: wall time of an N-trial sweep (`python src/train.py -m +sweeps=student_pareto`,
   one process) over the sum of the same N configs trained directly in one process with the
   pipeline's `run()`. Both use the same stored teacher, trained beforehand. Target <= 1.3.
2. Parallelism: 2N trials by one worker against two workers sharing the study (N each), each
   worker then limited to one thread (OMP_NUM_THREADS=1).

Usage: python benchmarks/sweep_overhead.py [N=4] [hydra overrides for every trial...]
Every run goes to a temporary folder; nothing is written to the checkout's mlruns/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from signdistill.pipeline import run

from common import ROOT, config

# 5-epoch trials; the teacher is trained beforehand with the same (short) recipe, so that no
# trial trains one: `model=teacher model.max_epochs=5` stores the teacher that
# `teacher.max_epochs=5` students look up.
SHORT = [
    "model.max_epochs=5",
    "teacher.max_epochs=5",
    "export.latency_runs=0",
    "trainer.enable_progress_bar=false",
]


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


def timed_sweeps(
    root: Path, n: int, overrides: list[str], workers: int, threads: int | None
) -> float:
    start = time.perf_counter()
    procs = [sweep(root, n, overrides, threads) for _ in range(workers)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(err.decode()[-3000:])
    return time.perf_counter() - start


def main(n: int, extra: list[str]) -> None:
    overrides = [*SHORT, *extra]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = [f"paths.root={root}", *overrides]
        run(config("model=teacher", *base))  # the stored teacher both sides use
        swept = timed_sweeps(root, n, overrides, workers=1, threads=None)
        study = optuna.load_study(
            study_name="student_pareto_isl_sim", storage=f"sqlite:///{root}/mlruns/optuna.db"
        )
        direct = 0.0
        for trial in study.trials:
            params = [f"{k}={v}" for k, v in trial.params.items()]
            start = time.perf_counter()
            run(config("model=student", *base, *params))
            direct += time.perf_counter() - start
        print(f"{n}-trial sweep: {swept:.1f} s; the same {n} configs run directly: {direct:.1f} s")
        print(f"sweeper overhead (sweep / direct): {swept / direct:.2f}x (target <= 1.3)")
        print(f"trials per hour at this trial length: {3600 * n / swept:.0f}")

    for workers, threads in ((1, None), (2, 1)):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            run(config("model=teacher", f"paths.root={root}", *overrides))
            per_worker = 2 * n // workers
            wall = timed_sweeps(root, per_worker, overrides, workers, threads)
            label = "1 worker, default threads" if workers == 1 else "2 workers, 1 thread each"
            print(f"{2 * n} trials, {label}: {wall:.1f} s")
            if workers == 1:
                sequential = wall
            else:
                print(f"parallel speed-up (sequential / parallel): {sequential / wall:.2f}x")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args.pop(0)) if args and args[0].isdigit() else 4, args)
