"""The MLflow UI, served over a sweep's runs and opened in headless Chromium (Debian's)."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pytest

from servers import mlflow_server
from sweep_helpers import ROOT, sweep

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
SCREENSHOT = ROOT / "test-artifacts" / "mlflow_runs.png"
COLUMNS = ("val_acc", "test_acc", "size_file_bytes", "params", "pareto")


def test_sweep_runs_are_listed_with_accuracy_and_size(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    result = sweep(tmp_path, "hydra.sweeper.n_trials=4")
    assert result.returncode == 0, result.stderr[-3000:]
    backend = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    mlflow.set_tracking_uri(backend)
    experiment = mlflow.get_experiment_by_name("signdistill").experiment_id

    with mlflow_server(backend, tmp_path / "mlruns" / "artifacts") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 2400, "height": 560})
        page.goto(f"{url}/#/experiments/{experiment}/runs?workflowType=machine_learning")
        page.get_by_text("study-student_pareto").first.wait_for(timeout=60_000)
        page.locator(".ag-row button").first.click()  # expand the study's child runs
        for n in range(4):
            page.get_by_text(f"trial-{n}", exact=True).wait_for(timeout=10_000)
        page.get_by_role("button", name="Columns", exact=True).click()
        for name in COLUMNS:
            page.get_by_placeholder("Search columns").fill(name)
            options = page.get_by_role("dialog").locator("span", has_text=re.compile(f"^{name}$"))
            options.first.click()
        page.keyboard.press("Escape")
        page.wait_for_timeout(1000)
        header = page.locator(".ag-header").inner_text()
        assert all(name in header for name in COLUMNS), header
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        rows = page.locator(".ag-center-cols-container .ag-row").all_inner_texts()
        browser.close()
    assert sum("true" in row for row in rows) >= 1  # the Pareto tag is visible in the table
