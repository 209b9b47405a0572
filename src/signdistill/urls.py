"""Storage and tracking URLs as they may be shown or logged: never with a password."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to log, tag or print)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# MLflow 3's UI opens an experiment in its GenAI view unless the page's address asks for the
# model-training one (its global "GenAI | Model training" switch): every link we print asks.
MODEL_TRAINING = "workflowType=machine_learning"
LOCAL_UI = "http://127.0.0.1:5000"  # `make ui` (mlflow ui's own default port)


def run_page(experiment_id: str, run_id: str) -> str:
    """A run's page in the MLflow UI, relative to the UI's address (``#/...``)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING}"


def runs_page(experiment_id: str, query: str = "") -> str:
    """An experiment's runs table in the MLflow UI, relative to the UI's address."""
    return f"#/experiments/{experiment_id}/runs?{MODEL_TRAINING}{'&' + query if query else ''}"
