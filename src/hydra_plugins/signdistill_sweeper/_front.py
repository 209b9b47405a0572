"""The study's front as the MLflow UI shows it: the study run's description (markdown: the front
as a table linking each trial's run, the plot, how the front is selected) and a saved view of the
experiment's runs (the study's trials, the front grouped apart, accuracy against size as a chart).

Pure functions of plain values (no MLflow, no Optuna), so they are tested on their own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from signdistill.urls import run_page, runs_page

# A run tag's value holds at most 8,000 characters (MLflow truncates longer ones): the table
# stops short of it and says how many rows are left out.
NOTE_LIMIT = 7800
SIZE = "size_deployed_bytes"  # what every run logs as the deployed file's bytes
VIEW_PREFIX = "mlflow.sharedViewState."  # MLflow UI's saved views: experiment tags


@dataclass(frozen=True)
class Trial:
    """One trial on the front: its number, objective values, sampled parameters and runs (one per
    repeat), and its deployed bytes when they are not an objective."""

    number: int
    values: Sequence[float]
    params: Mapping[str, Any]
    run_ids: Sequence[str]
    size: float | None = None


@dataclass(frozen=True)
class Study:
    """What a description says about the study: its name, objectives and their directions, how
    many trials completed, where its runs are, and the hypervolume with its reference point."""

    name: str
    objectives: Sequence[str]
    directions: Sequence[str]
    completed: int
    experiment_id: str
    parent_id: str
    hypervolume: float | None = None
    reference: Sequence[float] | None = field(default=None)


def description(study: Study, front: Sequence[Trial], plot: str | None) -> str:
    """The study run's description (markdown): a title line, the front as a table (smallest
    first when a size is an objective), the plot (the artifact path ``plot``), how it was
    selected. Rows that would not fit in a run tag are left out, and counted."""
    head = _title(study, len(front)) + "\n\n"
    picture = f"\n![{_axes(study)}]({_artifact(study, plot)})\n" if plot else ""
    tail = picture + "\n" + _selection(study)
    header, rows = _table(study, _ordered(study, front))
    kept: list[str] = []
    for row in rows:
        if len(head + header + "".join(kept) + row + tail) > NOTE_LIMIT - 100:
            break
        kept.append(row)
    more = len(rows) - len(kept)
    note = f"\n_{more} more trials on the front: see `trials.csv`._\n" if more else ""
    return head + header + "".join(kept) + note + tail


def _title(study: Study, size: int) -> str:
    goals = ", ".join(f"{d} `{n}`" for n, d in zip(study.objectives, study.directions, strict=True))
    what = "Pareto front" if len(study.objectives) > 1 else "Best trial"
    chart = runs_page(study.experiment_id, f"viewStateShareKey={view_key(study.name)}")
    return (
        f"**{what} of study `{study.name}`**: {size} of {study.completed} completed trials "
        f"({goals}). [All its trials, accuracy against size]({chart}&compareRunsMode=CHART)."
    )


def _table(study: Study, front: Sequence[Trial]) -> tuple[str, list[str]]:
    """The table's header and one row per trial: its run(s), objectives, bytes, parameters."""
    params = list(dict.fromkeys(k for t in front for k in t.params))
    sizes = [] if SIZE in study.objectives else [SIZE]
    names = ["trial", *study.objectives, *sizes, *params]
    header = _row(names) + _row(["---", *["--:"] * (len(names) - 1)])
    rows = []
    for t in front:
        extra = [_number(SIZE, t.size)] if sizes else []
        values = [_number(n, v) for n, v in zip(study.objectives, t.values, strict=True)]
        cells = [_links(study, t), *values, *extra, *(_param(t.params.get(p)) for p in params)]
        rows.append(_row(cells))
    return header, rows


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |\n"


def _links(study: Study, trial: Trial) -> str:
    """``[trial-3](its run)``; with repeats, one link per run: ``trial-3: [1](..) [2](..)``."""
    pages = [run_page(study.experiment_id, run) for run in trial.run_ids]
    if len(pages) == 1:
        return f"[trial-{trial.number}]({pages[0]})"
    return f"trial-{trial.number}: " + " ".join(f"[{i}]({p})" for i, p in enumerate(pages, 1))


def _number(name: str, value: float | None) -> str:
    """Bytes as whole numbers with thousands separators, anything else to 4 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if "bytes" in name:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _param(value: Any) -> str:
    text = f"{value:.3g}" if isinstance(value, float) else str("" if value is None else value)
    return text.replace("|", "\\|")


def _ordered(study: Study, front: Sequence[Trial]) -> list[Trial]:
    """Smallest first when a size (a minimized ``*bytes`` objective) is one, else best first."""
    by = _x_index(study)
    sign = 1.0 if study.directions[by] == "minimize" else -1.0
    return sorted(front, key=lambda t: (sign * t.values[by], t.number))


def _x_index(study: Study) -> int:
    """The objective plotted across (the PNG's and the chart's x axis): the second, if any."""
    return 1 if len(study.objectives) > 1 else 0


def _axes(study: Study) -> str:
    x, y = chart_axes(study.objectives)
    return f"{y} against {x}: every completed trial, the front joined"


def _artifact(study: Study, path: str | None) -> str:
    """An artifact of the study run, as the UI's own pages fetch it (relative to the UI)."""
    return f"get-artifact?path={path}&run_uuid={study.parent_id}"


def _selection(study: Study) -> str:
    """How the front was selected, and what the hypervolume says."""
    text = (
        "**How it is selected**: a completed trial is on the front when no other completed "
        "trial is at least as good in every objective and better in one. The objectives are "
        "validation metrics (test accuracy is logged with each trial, never optimized). The "
        "front's runs are tagged `pareto=true` (filter the runs with `tags.pareto = 'true'`); "
        "this description, the tags and the plots are refreshed after every completed trial."
    )
    reference = list(study.reference or [])
    if study.hypervolume is not None and len(reference) == len(study.objectives):
        pairs = zip(study.objectives, reference, strict=True)
        ref = ", ".join(f"`{n}` {_number(n, r)}" for n, r in pairs)
        text += f" Hypervolume {_number('bytes', study.hypervolume)} (reference point: {ref})."
    return text + "\n"


def chart_axes(objectives: Sequence[str]) -> tuple[str, str]:
    """(x, y) of the front's plots: the second objective (the size) across, the first (the
    accuracy) up; a single objective is plotted against the deployed bytes."""
    return (objectives[1], objectives[0]) if len(objectives) > 1 else (SIZE, objectives[0])


def view_key(study_name: str) -> str:
    """The key of the study's saved view (the UI's ``viewStateShareKey``)."""
    return "pareto_" + re.sub(r"[^A-Za-z0-9_]", "_", study_name)


def view_tag(
    study_name: str, objectives: Sequence[str], params: Sequence[str], now_ms: int
) -> tuple[str, str]:
    """The experiment tag (key, value) that saves the study's view in the MLflow UI (its
    "Views" menu): the study's completed trials, the front grouped apart (``pareto`` tag),
    objectives, bytes and parameters as columns, smallest first, and one chart of accuracy
    against size."""
    x, y = chart_axes(objectives)
    name = study_name.replace("'", "''")
    columns = ["tags.`pareto`", *(f"metrics.`{m}`" for m in dict.fromkeys([y, x, SIZE]))]
    section = "front"
    state = {
        "searchFilter": f"tags.`optuna.study_name` = '{name}' and tags.pareto LIKE '%'",
        "orderByKey": f"metrics.`{x}`",
        "orderByAsc": True,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": columns + [f"params.`{p}`" for p in params],
        "runsHiddenMode": "SHOW_ALL",
        "groupBy": {"aggregateFunction": "min", "groupByKeys": [_by_tag("pareto")]},
        "useGroupedValuesInCharts": False,
        "hideEmptyCharts": True,
        "compareRunSections": [_section(section, f"{y} against {x}")],
        "compareRunCharts": [_scatter(section, x, y)],
    }
    envelope = {"name": f"Pareto front: {study_name}", "createdAt": now_ms, "updatedAt": now_ms}
    return VIEW_PREFIX + view_key(study_name), json.dumps({**envelope, "state": json.dumps(state)})


def _by_tag(tag: str) -> dict[str, str]:
    return {"mode": "tag", "groupByData": tag}


def _section(uuid: str, name: str) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "name": name,
        "display": True,
        "isReordered": False,
        "deleted": False,
        "isGenerated": False,
        "columns": 1,
        "cardHeight": 480,
    }


def _scatter(section: str, x: str, y: str) -> dict[str, Any]:
    return {
        "uuid": "front-scatter",
        "type": "SCATTER",
        "runsCountToCompare": 100,
        "metricSectionId": section,
        "deleted": False,
        "isGenerated": False,
        "xaxis": {"key": x, "type": "METRIC"},
        "yaxis": {"key": y, "type": "METRIC"},
    }
