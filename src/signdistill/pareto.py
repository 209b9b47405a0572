"""The accuracy-size Pareto front: which trials are non-dominated, the volume they dominate, and
its plots."""

from __future__ import annotations

from collections.abc import Sequence

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


def hypervolume(
    values: np.ndarray | Sequence[Sequence[float]],
    directions: Sequence[str],
    reference: Sequence[float],
) -> float:
    """The volume the points ``values`` (one row per trial, one column per objective) dominate
    up to ``reference``, with each objective's direction; points no better than the reference
    in every objective add nothing.

    ``reference`` is in the objectives' own units: the worst value of each that still counts
    (e.g. accuracy 0 and 200,000 bytes). Optuna's own WFG implementation (``optuna._hypervolume``,
    private in Optuna 5: the tests pin its result on hand-made fronts), on objectives turned into
    losses: a maximized objective and its reference are negated together.
    """
    from optuna._hypervolume import compute_hypervolume

    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    losses = np.asarray(values, dtype=float) * sign
    ref = np.asarray(reference, dtype=float) * sign
    inside = np.all(losses < ref, axis=1)
    if not inside.any():
        return 0.0
    return float(compute_hypervolume(losses[inside], ref))


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


def front_html(
    values: np.ndarray, on_front: Sequence[bool], labels: Sequence[str], title: str, hover: list
) -> str:
    """The :func:`plot_front` scatter as an interactive page (plotly): the same axes (the second
    objective across, the first up), each point's ``hover`` text; plotly.js is loaded from its
    CDN, so the page is a few kB instead of 4.6 MB (it needs the internet to draw)."""
    import plotly.graph_objects as go

    v = np.asarray(values, dtype=float)
    front = np.asarray(on_front, dtype=bool)
    text = np.asarray(hover, dtype=object)
    order = np.argsort(v[front, 1])
    others, ours = (v[~front], text[~front]), (v[front][order], text[front][order])
    fig = go.Figure()
    for (points, texts), name, mode in (
        (others, "trials", "markers"),
        (ours, "Pareto front", "lines+markers"),
    ):
        # plain lists: plotly would write numpy arrays as base64 blobs
        x, y = points[:, 1].tolist(), points[:, 0].tolist()
        fig.add_scatter(x=x, y=y, text=texts.tolist(), mode=mode, name=name)
    fig.update_traces(hovertemplate="%{text}<br>x=%{x}<br>y=%{y}<extra></extra>")
    fig.update_layout(title=title, xaxis_title=labels[1], yaxis_title=labels[0])
    return fig.to_html(include_plotlyjs="cdn", full_html=True)
