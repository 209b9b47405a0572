"""`make ui [PORT=5000]`: the MLflow UI over the project's store, and the address to open.

    python -m signdistill.ui [--port 5000] [--store sqlite:///mlruns/mlflow.db]

Starts ``mlflow ui`` on 127.0.0.1 and, once it answers, prints the address of the project's
experiment in MLflow's model-training view (MLflow 3's UI opens experiments in its GenAI view
unless the address asks: see :mod:`signdistill.urls`). Ctrl-C stops the server.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from signdistill.urls import MODEL_TRAINING, runs_page

EXPERIMENT = "signdistill"  # conf/logger/mlflow.yaml's experiment_name


def address(store: str, port: int, experiment: str = EXPERIMENT) -> str:
    """The page to open: the experiment's runs, or the list of experiments before the first
    run has created it (both in the model-training view)."""
    base = f"http://127.0.0.1:{port}/"
    found = _experiment_id(store, experiment)
    return base + (runs_page(found) if found else f"#/experiments?{MODEL_TRAINING}")


def _experiment_id(store: str, experiment: str) -> str | None:
    """The experiment's id in ``store``, or None (no store file yet, or no such experiment)."""
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).exists():
        return None  # opening it would create an empty database
    import mlflow

    found = mlflow.MlflowClient(store).get_experiment_by_name(experiment)
    return found.experiment_id if found else None


def serve(store: str, port: int, timeout_s: float = 180.0) -> int:
    """Run ``mlflow ui`` until it exits (or Ctrl-C); print the address once it answers."""
    mlflow = Path(sys.executable).parent / "mlflow"
    command = [str(mlflow), "ui", "--backend-store-uri", store, "--host", "127.0.0.1"]
    server = subprocess.Popen([*command, "--port", str(port)])
    try:
        if _answers(f"http://127.0.0.1:{port}/health", server, timeout_s):
            print(f"\nMLflow UI: open {address(store, port)}  (Ctrl-C stops it)\n", flush=True)
        return server.wait()
    except KeyboardInterrupt:  # in a terminal the server got it too
        server.terminate()
        try:
            return server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            return server.wait()


def _answers(url: str, server: subprocess.Popen, timeout_s: float) -> bool:
    """Whether the server answers ``url`` before it exits or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while server.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--store", default="sqlite:///mlruns/mlflow.db")
    args = parser.parse_args(argv)
    return serve(args.store, args.port)


if __name__ == "__main__":
    sys.exit(main())
