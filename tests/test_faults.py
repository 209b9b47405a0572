"""A run stopped by SIGINT, SIGTERM or SIGKILL at any phase leaves nothing that lies: no run
FINISHED without its test accuracy, no run RUNNING once the next command has looked, no partial
or temporary files, no scratch folder once the next command has looked; the next run succeeds.
(A sweep stopped so: ``tests/test_sweeper.py``, its study run.)

Deterministic: the run is held at the phase (``signdistill.phases``) until the signal arrives.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest

from signdistill.checkpoints import load_model
from signdistill.phases import PAUSE_AT, PAUSE_FILE

from pipeline_helpers import ROOT, train_command

EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}
PAUSE_IN_FIT = "++train.callbacks.pause={_target_:signdistill.phases.PauseCallback}"


def environment(root: Path, **extra: str) -> dict[str, str]:
    """The runs' environment; their scratch folders in ``root/tmp``, where a test can see them."""
    (root / "tmp").mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "TMPDIR": str(root / "tmp"), **extra}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def stop_at(root: Path, phase: str, sig: int) -> tuple[int, float, int]:
    """Start a teacher run, hold it at ``phase``, send ``sig``; its exit code, how long it
    took to exit after the signal, and its pid."""
    pause = root / "paused"
    extra = [PAUSE_IN_FIT] if phase == "fit" else []
    env = environment(root, **{PAUSE_AT: phase, PAUSE_FILE: str(pause)})
    proc = subprocess.Popen(
        train_command(root, "model=teacher", *extra),
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not pause.exists():
        assert proc.poll() is None, "the run ended before reaching its phase"
        assert time.monotonic() < deadline, f"the run never reached {phase}"
        time.sleep(0.1)
    sent = time.monotonic()
    proc.send_signal(sig)
    code = proc.wait(timeout=120)
    return code, time.monotonic() - sent, proc.pid


def runs(root: Path):
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlruns/mlflow.db")
    found = mlflow.search_runs(experiment_names=["signdistill"])
    if "metrics.test_acc" not in found.columns:
        found["metrics.test_acc"] = float("nan")
    return found


def assert_nothing_lies(root: Path) -> None:
    if not (root / "mlruns" / "mlflow.db").exists():
        return
    found = runs(root)
    finished = found[found["status"] == "FINISHED"]
    assert finished["metrics.test_acc"].notna().all(), "a FINISHED run without test_acc"


def assert_no_partial_files(root: Path) -> None:
    leftovers = [p for p in root.rglob("*.tmp") if "mlruns/artifacts" not in str(p)]
    assert not leftovers
    for stored in (root / "mlruns" / "teachers").glob("*/*.pt"):
        load_model(stored)  # complete, or not there at all


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name
)
@pytest.mark.parametrize("phase", ["data", "fit", "evaluate", "export"])
def test_a_stopped_run_leaves_an_honest_record_and_the_next_run_succeeds(tmp_path, phase, sig):
    code, _, pid = stop_at(tmp_path, phase, sig)
    assert code == EXIT[sig]
    assert_nothing_lies(tmp_path)
    if sig != signal.SIGKILL and phase != "data":
        assert runs(tmp_path)["status"].tolist() == ["KILLED"]
    # its scratch folder (checkpoints, exported files): removed on the way out, unless killed
    scratch = list((tmp_path / "tmp").glob(f"signdistill-{pid}@*"))
    assert len(scratch) == (sig == signal.SIGKILL and phase != "data")

    again = subprocess.run(
        train_command(tmp_path, "model=teacher"),
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    after = runs(tmp_path)
    assert "RUNNING" not in set(after["status"])  # a SIGKILLed run was marked FAILED
    assert_nothing_lies(tmp_path)
    assert_no_partial_files(tmp_path)
    assert not list((tmp_path / "tmp").glob("signdistill-*"))  # the killed run's removed too


@pytest.mark.slow
def test_ctrl_c_inside_a_database_write_ends_the_run_killed_at_once(tmp_path):
    code, seconds, _ = stop_at(tmp_path, "mlflow-write", signal.SIGINT)
    assert code == 130
    assert seconds < 20  # not SQLite's lock timeouts
    assert runs(tmp_path)["status"].tolist() == ["KILLED"]
