"""How many torch threads a run trains with (``threads`` in ``conf/config.yaml``).

Measured by ``benchmarks/threads.py`` on a 2-core machine (README, "Threads"): on a quiet machine
two threads train a teacher epoch in 0.66x and a student epoch in 0.80x the time of one thread;
beside one competing CPU-bound process, two threads are 1.20x and 1.53x *slower* than one, at
2.5-3.3x its CPU time (their idle threads spin, taking turns away from the other process). So the
default, ``auto``, gives a run the cores that nothing else is using when it starts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

Threads = int | Literal["auto"] | None
STAT = Path("/proc/stat")  # Linux: CPU time per state since boot, all cores on the first line


def free_cores(seconds: float = 0.25) -> int:
    """The cores that were idle over the next ``seconds`` (this process sleeps meanwhile, so its
    own work does not count), at least one. Without ``/proc/stat``: the cores minus the 1-minute
    load average, which lags and counts this process's start-up too."""
    cores = os.cpu_count() or 1
    if not STAT.exists():
        return max(1, cores - round(os.getloadavg()[0]))
    before = _cpu_times()
    time.sleep(seconds)
    spent = [b - a for a, b in zip(before, _cpu_times(), strict=True)]
    idle = (spent[3] + spent[4]) / max(1, sum(spent))  # idle and iowait
    return max(1, round(cores * idle))


def _cpu_times() -> list[int]:
    """The first line of /proc/stat: user, nice, system, idle, iowait, ... (clock ticks)."""
    return [int(v) for v in STAT.read_text().splitlines()[0].split()[1:]]


def choose(threads: Threads) -> int | None:
    """The thread count for ``threads``: ``auto`` the free cores, unless ``OMP_NUM_THREADS`` is
    set (a cluster job's or a user's explicit count, which torch then follows: None); None
    torch's own default (one per core); a number itself."""
    if threads == "auto":
        return None if "OMP_NUM_THREADS" in os.environ else free_cores()
    return threads
