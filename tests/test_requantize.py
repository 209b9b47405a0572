"""studies/requantize.py end to end on two tiny MLflow runs: a table per group, resumable."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import mlflow
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from signdistill.checkpoints import save_model
from signdistill.models import Architecture, ConvPoolLSTM

from pipeline_helpers import CONF, ROOT, TINY_DATA


def requantize():
    spec = importlib.util.spec_from_file_location("requantize", ROOT / "studies/requantize.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def log_runs(root: Path) -> str:
    """Two finished runs (methods a and b) and a failed one, each with the artifacts a training
    run logs (``model.pt``, the resolved ``config.yaml``), and a finished run without them (c).
    Returns the tracking URI."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.root={root}", *TINY_DATA])
    data = OmegaConf.create({"data": OmegaConf.to_container(cfg.data, resolve=True)})
    (root / "config.yaml").write_text(OmegaConf.to_yaml(data))
    dm = instantiate(cfg.data)
    dm.prepare()
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("tiny", artifact_location=str(root / "artifacts"))
    for seed, method, status in ((0, "a", "FINISHED"), (1, "b", "FINISHED"), (2, "a", "FAILED")):
        torch.manual_seed(seed)
        model = ConvPoolLSTM(Architecture(len(dm.channels), len(dm.classes), (4, 4), (8,)))
        model.normalize.fit(*dm.channel_stats())
        meta = {"classes": dm.classes, "channels": dm.channels, "length": dm.recordings.x.shape[2]}
        save_model(root / "model.pt", model.eval(), meta)
        with mlflow.start_run(experiment_id=experiment, tags={"study": "t", "method": method}):
            mlflow.log_artifact(str(root / "model.pt"))
            mlflow.log_artifact(str(root / "config.yaml"))
        if status != "FINISHED":
            client = mlflow.MlflowClient(uri)
            client.set_terminated(client.search_runs([experiment])[0].info.run_id, status)
    with mlflow.start_run(experiment_id=experiment, tags={"study": "t", "method": "c"}):
        pass
    return uri


@pytest.mark.slow
def test_requantize_reports_each_group_and_resumes_from_its_cache(tmp_path, monkeypatch):
    uri = log_runs(tmp_path)
    study = requantize()
    out = tmp_path / "report" / "requantize.md"
    args = ["tags.study = 't'", "--tracking-uri", uri, "--out", str(out), "--lstm-options"]
    report = study.main(args)
    assert out.read_text() == report
    assert "### method = a (1 run)" in report and "### method = b (1 run)" in report
    assert "method = c" not in report  # no model stored: skipped
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line]
    names = [row.split(" | ")[0].removeprefix("| ") for row in rows if not row.startswith("| file")]
    assert names == 2 * [
        "fp32 ONNX",
        "dynamic int8",
        "static int8",
        "static int8, LSTM dynamic",
        "static int8, LSTM fp32",
    ]
    static = next(row for row in rows if row.startswith("| static int8 |"))
    assert static.endswith("| 1/1 |")  # the same logits at any batch size
    assert out.with_suffix(".json").is_file()

    def measured_again(*args, **kwargs):
        raise AssertionError("a cached run was measured again")

    monkeypatch.setattr(study, "measure_run", measured_again)
    assert study.main(args) == report
