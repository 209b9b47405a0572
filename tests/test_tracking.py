"""MLflow set-up: workers that open a new SQLite store at the same moment all get the experiment;
runs left RUNNING by processes that are gone are marked FAILED by the next run on the machine."""

import multiprocessing as mp
import os
import socket
import subprocess
import sys

import mlflow
import pytest

from signdistill import tracking


def _configure(uri: str) -> str:
    return tracking.configure(uri, "signdistill", None)


@pytest.mark.slow  # worker processes, each importing MLflow
def test_concurrent_first_use_of_a_sqlite_store_succeeds_for_every_worker(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    with mp.get_context("spawn").Pool(3) as pool:
        ids = pool.map(_configure, [uri] * 3)
    assert len(set(ids)) == 1


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_running_runs_of_dead_or_recycled_processes_are_marked_failed_by_the_next(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    experiment = tracking.configure(uri, "signdistill", None)
    client = mlflow.MlflowClient(uri)
    here = {tracking.HOST_TAG: socket.gethostname()}

    def running(pid: int, start_time: int | None = None, host: dict | None = None) -> str:
        tags = {**(here if host is None else host), tracking.PID_TAG: str(pid)}
        return client.create_run(experiment, start_time=start_time, tags=tags).info.run_id

    dead = running(_dead_pid())
    recycled = running(os.getpid(), start_time=1000)  # this pid began long after that run
    alive = running(os.getpid())
    elsewhere = running(_dead_pid(), host={tracking.HOST_TAG: "another-machine"})
    tracking.configure(uri, "signdistill", None)  # what every run does first
    status = {r: client.get_run(r).info.status for r in (dead, recycled, alive, elsewhere)}
    assert status == {dead: "FAILED", recycled: "FAILED", alive: "RUNNING", elsewhere: "RUNNING"}
    assert "ended without a status" in client.get_run(dead).data.tags["signdistill.error"]
