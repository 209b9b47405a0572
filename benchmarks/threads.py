"""How many torch threads to train with: epoch time of the teacher and the student with 1 and with
2 intra-op threads, interleaved round by round, optionally beside a competing CPU-bound process
(``--busy``: ``yes > /dev/null`` for the whole measurement, as a second job on the machine would).

Prints, per model, the median [min, max] of the per-round ratios of wall time (2 threads / 1
thread) and of the process's CPU time per epoch: above 1 means the second thread costs more than
it brings.

Usage: python benchmarks/threads.py [repeats=5] [--busy] [hydra overrides, e.g. data=lis]
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import torch

from signdistill import build
from signdistill.settings import compose
from training_overhead import lightning_side

from common import config, interleave, median_ms, ratio

THREADS = (1, 2)


def with_threads(n: int, epoch: Callable[[], float], cpu: list[float]) -> Callable[[], float]:
    """``epoch`` run on ``n`` intra-op threads; appends the process CPU seconds it used to
    ``cpu``."""

    def side() -> float:
        torch.set_num_threads(n)
        start = time.process_time()
        seconds = epoch()
        cpu.append(time.process_time() - start)
        return seconds

    return side


def main(repeats: int, busy: bool, overrides: list[str]) -> None:
    s = compose(config("model=student", *overrides))
    dm = s.data
    dm.prepare()
    print(f"data={dm.name}: {len(dm.split.train)} training recordings, batch {dm.batch_size}")
    sides, cpu = {}, {}
    for name, spec, recipe in (
        ("teacher", s.teacher.model, s.teacher.train),
        ("student", s.model, s.train),
    ):
        module = recipe.module(build.network(spec, dm), None, None)  # no augmentation
        for n in THREADS:
            key = f"{name}/{n}"
            cpu[key] = []
            sides[key] = with_threads(n, lightning_side(module, dm, s.trainer), cpu[key])
    competitor = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) if busy else None
    try:
        times = interleave(sides, repeats)
    finally:
        if competitor is not None:
            competitor.kill()
    print("beside a competing CPU-bound process" if busy else "on a quiet machine")
    for key in sides:
        print(f"{key} threads: median {median_ms(times, key):.0f} ms per epoch")
    for name in ("teacher", "student"):
        a, b = f"{name}/{THREADS[1]}", f"{name}/{THREADS[0]}"
        warm = {k: v[-repeats:] for k, v in cpu.items()}  # the timed rounds, not the warm-up
        print(f"{name}: wall 2/1 threads {ratio(times, a, b)}; CPU time {ratio(warm, a, b)}")


if __name__ == "__main__":
    args = sys.argv[1:]
    n_repeats = int(args.pop(0)) if args and args[0].isdigit() else 5
    main(n_repeats, "--busy" in args, [a for a in args if a != "--busy"])
