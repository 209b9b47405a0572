"""MLflow set-up: workers that open a new SQLite store at the same moment all get the experiment."""

import multiprocessing as mp

from signdistill import tracking


def _configure(uri: str) -> str:
    return tracking.configure(uri, "signdistill", None)


def test_concurrent_first_use_of_a_sqlite_store_succeeds_for_every_worker(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    with mp.get_context("spawn").Pool(3) as pool:
        ids = pool.map(_configure, [uri] * 3)
    assert len(set(ids)) == 1
