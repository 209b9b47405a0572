"""How many torch threads a run trains with (``threads`` in ``conf/config.yaml``).

Measured by ``benchmarks/threads.py`` on a 2-core machine (README, "Threads"): on a quiet machine
two threads train a teacher epoch in 0.66x and a student epoch in 0.80x the time of one thread;
beside one competing CPU-bound process, two threads are 1.20x and 1.53x *slower* than one, at
2.5-3.3x its CPU time (their idle threads spin, taking turns away from the other process). So the
default, ``auto``, gives a run the cores that nothing else is using when it starts.
"""

from __future__ import annotations

import os
from typing import Literal

Threads = int | Literal["auto"] | None


def free_cores() -> int:
    """This machine's cores minus its load over the last minute (rounded), at least one."""
    cores = os.cpu_count() or 1
    return max(1, cores - round(os.getloadavg()[0]))


def choose(threads: Threads) -> int | None:
    """The thread count for ``threads``: ``auto`` the free cores, None torch's own default (one
    per core), a number itself."""
    return free_cores() if threads == "auto" else threads
