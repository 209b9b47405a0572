"""How many torch threads to train with, and how their OpenMP runtime should wait: epoch time of the
teacher and the student with 1 thread, 2 threads whose idle workers spin (``OMP_WAIT_POLICY=
ACTIVE``, the GNU OpenMP runtime's default behaviour for a while after each parallel region) and 2
threads that sleep (``PASSIVE``), interleaved round by round; optionally beside a competing
CPU-bound process (``--busy``: ``yes > /dev/null`` for the whole measurement, as a second job on
the machine would be).

The wait policy is read when the OpenMP runtime loads, so each side is a worker process of its
own, set up once; the parent asks the sides for one epoch each per round (A, B, C, C, B, A, ...),
and only the asked worker runs. Prints per model the median [min, max] of per-round ratios of wall
time and of the worker's CPU time against 1 thread.

Usage: python benchmarks/threads.py [repeats=5] [--busy] [hydra overrides, e.g. data=lis]
"""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from common import config, interleave, median_ms, ratio

SIDES = {"1 thread": (1, "PASSIVE"), "2 spinning": (2, "ACTIVE"), "2 sleeping": (2, "PASSIVE")}
MODELS = ("teacher", "student")


def worker(conn: Connection, threads: int, overrides: list[str]) -> None:
    """One side: builds both models' epochs once, then runs the one asked for, answering with
    its (wall, CPU) seconds, until asked to stop. Its wait policy came with its environment."""
    import torch

    from signdistill import build
    from signdistill.settings import compose
    from training_overhead import lightning_side

    torch.set_num_threads(threads)
    s = compose(config("model=student", *overrides))
    s.data.prepare()
    epochs = {
        name: lightning_side(
            recipe.module(build.network(spec, s.data), None, None), s.data, s.trainer
        )
        for name, spec, recipe in (
            ("teacher", s.teacher.model, s.teacher.train),
            ("student", s.model, s.train),
        )
    }
    conn.send("ready")
    while (name := conn.recv()) is not None:
        start = time.process_time()
        wall = epochs[name]()
        conn.send((wall, time.process_time() - start))


def side(conn: Connection, name: str, cpu: list[float]) -> Callable[[], float]:
    def run() -> float:
        conn.send(name)
        wall, seconds = conn.recv()
        cpu.append(seconds)
        return wall

    return run


def main(repeats: int, busy: bool, overrides: list[str]) -> None:
    context = mp.get_context("spawn")
    conns = {}
    for label, (threads, policy) in SIDES.items():
        parent, child = context.Pipe()
        os.environ["OMP_WAIT_POLICY"] = policy  # inherited: read when the worker loads torch
        context.Process(target=worker, args=(child, threads, overrides), daemon=True).start()
        conns[label] = parent
    for conn in conns.values():
        assert conn.recv() == "ready"
    cpu = {f"{m}/{label}": [] for m in MODELS for label in SIDES}
    sides = {
        f"{m}/{label}": side(conn, m, cpu[f"{m}/{label}"])
        for m in MODELS
        for label, conn in conns.items()
    }
    competitor = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) if busy else None
    try:
        times = interleave(sides, repeats)
    finally:
        if competitor is not None:
            competitor.kill()
        for conn in conns.values():
            conn.send(None)
    print("beside a competing CPU-bound process" if busy else "no competing process started")
    for key in sides:
        print(f"{key}: median {median_ms(times, key):.0f} ms per epoch")
    timed = {k: v[-repeats:] for k, v in cpu.items()}  # the timed rounds, not the warm-up
    for m in MODELS:
        for label in list(SIDES)[1:]:
            a, b = f"{m}/{label}", f"{m}/1 thread"
            print(f"{m}, {label} / 1 thread: wall {ratio(times, a, b)}; CPU {ratio(timed, a, b)}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))  # common, training_overhead for the workers
    args = sys.argv[1:]
    n_repeats = int(args.pop(0)) if args and args[0].isdigit() else 5
    main(n_repeats, "--busy" in args, [a for a in args if a != "--busy"])
