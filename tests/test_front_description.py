"""The study's front as the MLflow UI shows it (issue #26): the study run's description (a table
of the front linking each trial's run), its saved view, the interactive plot."""

from __future__ import annotations

import json
import re

import numpy as np

from hydra_plugins.signdistill_sweeper import _front
from signdistill.pareto import front_html

OBJECTIVES = ["val_acc_deployed", "size_deployed_bytes"]
STUDY = _front.Study(
    "student_pareto_lis",
    OBJECTIVES,
    ["maximize", "minimize"],
    completed=12,
    experiment_id="7",
    parent_id="p" * 32,
    hypervolume=168532.4,
    reference=[0.0, 200000.0],
)


def trial(number: int, acc: float, size: float, runs: int = 1, **params) -> _front.Trial:
    ids = [f"{number:02d}{i}".ljust(32, "a") for i in range(runs)]
    return _front.Trial(number, [acc, size], params or {"model.width": 1.5}, ids)


def table(note: str) -> list[list[str]]:
    """The markdown table's rows (header first), cells stripped, the separator row left out."""
    rows = [line for line in note.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]
    return [cells[0], *cells[2:]]


def test_the_table_lists_the_front_smallest_first_with_its_objectives_bytes_and_params():
    front = [
        trial(3, 0.912, 42037.0, **{"model.width": 2.0, "distill.temperature": 4.123456}),
        trial(11, 0.8631, 12335.0, **{"model.width": 0.5, "distill.temperature": 2.0}),
    ]
    rows = table(_front.description(STUDY, front, "pareto_front.png"))
    assert rows[0] == ["trial", *OBJECTIVES, "model.width", "distill.temperature"]
    assert [row[1:] for row in rows[1:]] == [
        ["0.8631", "12,335", "0.5", "2"],
        ["0.912", "42,037", "2", "4.12"],
    ]
    run = "11" + "0".ljust(30, "a")
    assert rows[1][0] == f"[trial-11](#/experiments/7/runs/{run}?workflowType=machine_learning)"


def test_the_description_says_what_the_front_is_how_it_was_selected_and_shows_the_plot():
    note = _front.description(STUDY, [trial(3, 0.9, 1000.0)], "pareto_front.png")
    first = note.splitlines()[0]
    assert "**Pareto front of study `student_pareto_lis`**: 1 of 12 completed trials" in first
    assert "maximize `val_acc_deployed`, minimize `size_deployed_bytes`" in first
    view = "#/experiments/7/runs?workflowType=machine_learning&viewStateShareKey=pareto_student"
    assert f"]({view}_pareto_lis&compareRunsMode=CHART)" in first  # the chart, one click away
    plot = f"(get-artifact?path=pareto_front.png&run_uuid={'p' * 32})"
    assert re.search(
        r"!\[val_acc_deployed against size_deployed_bytes[^]]*\]" + re.escape(plot), note
    )
    assert "no other completed trial is at least as good in every objective" in note
    assert "`tags.pareto = 'true'`" in note
    assert "Hypervolume 168,532 (reference point: `val_acc_deployed` 0, " in note
    assert _front.description(STUDY, [trial(3, 0.9, 1000.0)], None).count("![") == 0


def test_each_repeat_run_is_linked_and_the_bytes_are_added_when_not_an_objective():
    single = _front.Study("acc", ["val_acc"], ["maximize"], 3, "1", "p")
    best = _front.Trial(4, [0.75], {"choice": "a|b"}, ["r1", "r2"], size=33164.0)
    note = _front.description(single, [best], None)
    assert note.startswith("**Best trial of study `acc`**: 1 of 3 completed trials")
    rows = table(note)
    assert rows[0] == ["trial", "val_acc", "size_deployed_bytes", "choice"]
    links = "trial-4: [1](#/experiments/1/runs/r1?workflowType=machine_learning) [2]("
    assert rows[1][0].startswith(links)
    assert rows[1][1:] == ["0.75", "33,164", "a\\|b"]  # a "|" in a value does not split a cell


def test_a_long_front_fits_in_a_run_tag_and_says_what_it_left_out():
    front = [trial(n, 0.5 + n / 1000, 1000.0 * n, runs=3) for n in range(60)]
    note = _front.description(STUDY, front, "pareto_front.png")
    assert len(note) <= 8000  # MLflow's limit for a tag's value
    shown = len(table(note)) - 1
    assert 0 < shown < 60
    assert f"_{60 - shown} more trials on the front: see `trials.csv`._" in note
    assert note.rstrip().endswith(").")  # the selection paragraph is kept whole


def test_the_saved_view_charts_accuracy_against_size_for_the_studys_trials():
    key, value = _front.view_tag("it's", OBJECTIVES, ["model.width"], now_ms=1000)
    assert key == "mlflow.sharedViewState.pareto_it_s"
    envelope = json.loads(value)
    assert (envelope["name"], envelope["createdAt"]) == ("Pareto front: it's", 1000)
    state = json.loads(envelope["state"])
    assert state["searchFilter"] == "tags.`optuna.study_name` = 'it''s' and tags.pareto LIKE '%'"
    assert state["orderByKey"] == "metrics.`size_deployed_bytes`" and state["orderByAsc"]
    assert state["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "pareto"}]
    assert state["selectedColumns"] == [
        "tags.`pareto`",
        "metrics.`val_acc_deployed`",
        "metrics.`size_deployed_bytes`",
        "params.`model.width`",
    ]
    (chart,) = state["compareRunCharts"]
    assert chart["type"] == "SCATTER"
    assert (chart["xaxis"]["key"], chart["yaxis"]["key"]) == tuple(reversed(OBJECTIVES))
    assert chart["metricSectionId"] == state["compareRunSections"][0]["uuid"]
    assert len(value) < 20000  # MLflow's limit for an experiment tag's value


def test_the_interactive_plot_is_small_and_has_the_pngs_axes():
    values = np.array([[0.9, 40000.0], [0.8, 10000.0], [0.7, 30000.0]])
    page = front_html(values, [True, True, False], OBJECTIVES, "study s", ["a", "b", "c"])
    assert len(page) < 50_000  # 4.6 MB with plotly.js inside
    assert "cdn.plot.ly" in page
    decoder, call = json.JSONDecoder(), page.index("Plotly.newPlot(")
    data, end = decoder.raw_decode(page, page.index("[", call))
    layout, _ = decoder.raw_decode(page, page.index("{", end))
    assert [trace["name"] for trace in data] == ["trials", "Pareto front"]
    assert data[1]["x"] == [10000.0, 40000.0]  # the front, joined smallest first
    assert layout["xaxis"]["title"]["text"] == "size_deployed_bytes"  # across, as in the PNG
    assert layout["yaxis"]["title"]["text"] == "val_acc_deployed"


def test_a_reference_point_that_does_not_fit_the_objectives_is_left_out():
    single = _front.Study("s", ["val_acc"], ["maximize"], 3, "1", "p", 0.5, [0.0, 10_000.0])
    note = _front.description(single, [_front.Trial(1, [0.5], {}, ["r"])], None)
    assert "Hypervolume" not in note
