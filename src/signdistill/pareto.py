"""The accuracy-size Pareto front: which trials are non-dominated, and its plots."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np


def pareto_mask(
    values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str]
) -> list[bool]:
    """True for each row of ``values`` that no other row dominates.

    A row dominates another when it is at least as good in every objective (per direction,
    'maximize' or 'minimize') and strictly better in one. Equal rows do not dominate each other.
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return []
    sign = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    v = v * sign  # everything becomes "higher is better"
    better_eq = (v[:, None, :] >= v[None, :, :]).all(-1)
    strictly = (v[:, None, :] > v[None, :, :]).any(-1)
    dominated = (better_eq & strictly).any(axis=0)
    return [not d for d in dominated]


def redact_url(url: str) -> str:
    """A storage URL with any password replaced by ``***`` (safe to log)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def plot_front(
    values: np.ndarray, on_front: Sequence[bool], labels: Sequence[str], title: str
):  # -> matplotlib Figure
    """Scatter of every completed trial (first two objectives), the front highlighted and joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    v = np.asarray(values, dtype=float)
    front = np.asarray(on_front, dtype=bool)
    ax.scatter(v[~front, 1], v[~front, 0], c="0.6", label="trials")
    order = np.argsort(v[front, 1])
    ax.plot(v[front, 1][order], v[front, 0][order], "o-", c="C3", label="Pareto front")
    ax.set_xlabel(labels[1])
    ax.set_ylabel(labels[0])
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
