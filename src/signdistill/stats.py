"""Statistics for comparing methods over data splits: confidence intervals and paired tests.

Methods are compared on the same splits, so differences are paired: the split-to-split spread
(about 3 points on LIS) cancels, and what remains is tested with a t interval and Wilcoxon's
signed-rank test (which does not assume normal differences).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """A mean with its two-sided confidence interval (t distribution over n samples)."""

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class Paired:
    """Paired differences a - b: their mean interval, Wilcoxon's p-value and the wins of a."""

    diff: Interval
    p_value: float
    wins: int
    ties: int


def mean_ci(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of ``values`` with a ``level`` t confidence interval (zero width for one value)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2 or np.all(x == x[0]):  # no spread to build an interval from
        return Interval(mean, mean, mean, len(x))
    low, high = stats.t.interval(level, len(x) - 1, loc=mean, scale=stats.sem(x))
    return Interval(mean, float(low), float(high), len(x))


def paired(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Paired:
    """Compare ``a`` with ``b`` measured on the same splits (two-sided Wilcoxon signed-rank)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {len(x)} and {len(y)}")
    d = x - y
    nonzero = d[d != 0]
    p = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) else 1.0
    return Paired(mean_ci(d, level), p, int((d > 0).sum()), int((d == 0).sum()))
