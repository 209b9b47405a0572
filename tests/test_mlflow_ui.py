"""The MLflow UI as a new user meets it (issue #26): a tiny sweep on a fresh store, the UI started
the way `make ui` starts it, opened in headless Chromium (Debian's) at the address it prints.

Every check reads the page itself. The screenshots go to docs/img/ (the README shows them).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from servers import free_port
from sweep_helpers import ROOT, environment, sweep

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = ROOT / "docs" / "img"
STUDY = "student_pareto_isl_sim"
OBJECTIVES = ("val_acc_deployed", "size_deployed_bytes")


@contextlib.contextmanager
def make_ui(root: Path) -> Iterator[str]:
    """`make ui`'s command (python -m signdistill.ui) in ``root``; yields the address it prints.
    Stopped as Ctrl-C stops it in a terminal: SIGINT to its process group."""
    out = root / "ui.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "signdistill.ui", "--port", str(free_port())],
            cwd=root,
            env=environment(),
            stdout=sink,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while not (found := re.search(r"MLflow UI: open (\S+)", out.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.5)
        yield found.group(1)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A 4-trial sweep on tiny data in a fresh folder, served by `make ui`: (its address, the
    folder)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    root = tmp_path_factory.mktemp("ui")
    result = sweep(root, "hydra.sweeper.n_trials=4")
    assert result.returncode == 0, result.stderr[-3000:]
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlruns/mlflow.db")
    with make_ui(root) as address:
        yield address, root


@pytest.fixture(scope="module")
def browser(ui):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    yield context.new_page()
    context.close()


def front_trials() -> set[str]:
    """The names of the trial runs MLflow has tagged ``pareto=true``."""
    front = "tags.pareto = 'true'"
    runs = mlflow.search_runs(experiment_names=["signdistill"], filter_string=front)
    return set(runs["tags.mlflow.runName"])


def open_experiment(page, address: str) -> None:
    page.goto(address)
    page.get_by_text(f"study-{STUDY}").first.wait_for(timeout=60_000)


def test_the_experiment_opens_in_the_model_training_view(ui, page):
    address, _ = ui
    experiment = mlflow.get_experiment_by_name("signdistill")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = f"/#/experiments/{experiment.experiment_id}/runs"
    assert address.endswith(f"{runs}?workflowType=machine_learning")
    open_experiment(page, address)
    nav = page.locator("nav, aside").first.inner_text()
    # the model-training view's side bar (Runs, Models), not the GenAI one (Overview, Judges, ...)
    assert "Models" in nav and "Judges" not in nav and "Evaluation runs" not in nav, nav
    assert page.get_by_role("button", name="Views").is_visible()  # the runs table's toolbar
    assert "workflowType=machine_learning" in page.url


def test_the_front_is_on_the_study_run_page_two_clicks_from_the_experiment(ui, page):
    address, _ = ui
    open_experiment(page, address)
    page.get_by_role("link", name=f"study-{STUDY}").first.click()  # click 1: the study's run
    page.get_by_text("Show more").click()  # click 2: its whole description
    description = page.get_by_test_id("note-editor-preview-content")
    table = description.locator("table")
    headers = table.locator("th").all_inner_texts()
    assert headers[:3] == ["trial", *OBJECTIVES] and "model.width" in headers, headers
    rows = table.locator("tbody tr").all_inner_texts()
    assert {row.split()[0] for row in rows} == front_trials()
    plot = description.locator("img[src*='pareto_front.png']")
    plot.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=plot.element_handle())
    DOCS.mkdir(parents=True, exist_ok=True)
    description.screenshot(path=str(DOCS / "mlflow_study_front.png"))
    first = rows[0].split()[0]
    with page.context.expect_page() as opened:  # the table links each trial's run
        table.get_by_role("link", name=first).click()
    trial = opened.value
    trial.get_by_text(first).first.wait_for(timeout=30_000)
    assert "workflowType=machine_learning" in trial.url


def test_the_saved_view_lists_the_trials_with_the_front_apart(ui, page):
    address, _ = ui
    open_experiment(page, address)
    page.get_by_role("button", name="Views").click()  # click 1: the experiment's saved views
    page.get_by_text(f"Pareto front: {STUDY}").click()  # click 2
    page.get_by_text("Group: true").first.wait_for(timeout=30_000)  # the front, grouped apart
    header = page.locator(".ag-header").inner_text()
    assert all(name in header for name in (*OBJECTIVES, "pareto", "model.width")), header
    trials = page.get_by_role("link", name=re.compile(r"^trial-\d+$")).all_inner_texts()
    assert sorted(trials) == [f"trial-{n}" for n in range(4)]  # the study's trials, no other run


def test_the_chart_of_accuracy_against_size_is_two_clicks_from_the_experiment(ui, page):
    address, _ = ui
    open_experiment(page, address)
    page.get_by_role("link", name=f"study-{STUDY}").first.click()  # click 1: the study's run
    with page.context.expect_page() as opened:  # click 2: the link atop its description
        page.get_by_role("link", name="All its trials, accuracy against size").click()
    chart = opened.value
    chart.set_viewport_size({"width": 1500, "height": 900})
    chart.get_by_text(f"{OBJECTIVES[0]} against {OBJECTIVES[1]}").wait_for(timeout=60_000)
    points = chart.locator(".js-plotly-plot .scatterlayer .point")
    points.first.wait_for(timeout=30_000)
    assert points.count() == 4  # one per trial
    assert "workflowType=machine_learning" in chart.url
    chart.wait_for_timeout(1000)
    chart.screenshot(path=str(DOCS / "mlflow_front_chart.png"))
