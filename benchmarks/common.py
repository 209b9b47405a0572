"""Shared set-up for the performance benchmarks: the project config and timing helpers that
interleave the sides being compared."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from signdistill.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def config(*overrides: str) -> DictConfig:
    """The project's Hydra config (rooted at the checkout) with ``overrides``."""
    return load_config(f"paths.root={ROOT}", *overrides)


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    """``fn`` as a side for :func:`interleave`: each call returns its wall time in seconds."""

    def side() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return side


def interleave(
    sides: Mapping[str, Callable[[], float]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Measure every side once per round for ``repeats`` rounds (after ``warmup`` untimed rounds).

    Each side is a callable returning the seconds it measured. Sides alternate within a round,
    and every other round runs them in reverse order (A, B, B, A, ...), so a neighbour's load or
    a slow drift of the machine lands on all sides alike instead of on whichever ran second.
    """
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            seconds = sides[name]()
            if round_ >= warmup:
                times[name].append(seconds)
    return times


@dataclass(frozen=True)
class Ratio:
    """The median of per-round ratios between two interleaved sides, and their range."""

    median: float
    low: float
    high: float
    repeats: int

    def __str__(self) -> str:
        return (
            f"{self.median:.2f}x [{self.low:.2f}, {self.high:.2f}] "
            f"(median [min, max] over {self.repeats} interleaved repeats)"
        )


def ratio(times: Mapping[str, Sequence[float]], numerator: str, denominator: str) -> Ratio:
    """``numerator`` / ``denominator`` round by round: each round's two measurements ran next to
    each other, so their ratio is what is comparable on a noisy machine, not the totals."""
    pairs = [a / b for a, b in zip(times[numerator], times[denominator], strict=True)]
    return Ratio(statistics.median(pairs), min(pairs), max(pairs), len(pairs))


def median_ms(times: Mapping[str, Sequence[float]], side: str) -> float:
    """The median of one side's measurements, in milliseconds."""
    return 1e3 * statistics.median(times[side])
