"""What a run prints (issue #15): the progress bar, no known-harmless warnings, one summary line;
and the device it trained on, chosen by ``trainer.accelerator=auto``."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import lightning as L
import mlflow
import pytest
import torch

from signdistill import console, export, tracking
from signdistill.data.datamodule import SignDataModule
from signdistill.models import Architecture, ConvPoolLSTM
from signdistill.module import SignClassifier

from fakes import BlobSource
from pipeline_helpers import make_cfg

ROOT = Path(__file__).resolve().parents[1]
# What the known sources print when they are not silenced (issue #15).
KNOWN = re.compile(
    r"_flat_weights|pre-processing before quantization|Quantization parameters for tensor"
    r"|Tip: For seamless|LeafSpec|legacy TorchScript-based ONNX export|ExperimentalWarning"
    r"|with a variable length with LSTM|on_before_batch_transfer"
)


def tiny_model() -> ConvPoolLSTM:
    return ConvPoolLSTM(Architecture(5, 4, (4, 4), (8, 8)))


@pytest.fixture(scope="module")
def run_output(tmp_path_factory) -> tuple[str, Path]:
    """The console output of a whole `python src/train.py` run (a teacher trained first, then
    the default distilled student) on tiny data, and its root folder."""
    root = tmp_path_factory.mktemp("run")
    command = [
        sys.executable,
        str(ROOT / "src" / "train.py"),
        f"paths.root={root}",
        f"hydra.run.dir={root}/outputs",
        "~data.source",
        "+data.source={_target_:fakes.BlobSource}",
        "data.batch_size=8",
        "train.max_epochs=2",
        "teacher.train.max_epochs=2",
        "train.min_steps=0",
        "train.val_every_steps=1",
        "teacher.train.min_steps=0",
        "teacher.train.val_every_steps=1",
        "export.latency_runs=5",
        "logger.log_model=false",  # see test_logging_the_model_prints_no_flat_weights_warning
    ]
    env = os.environ | {"PYTHONPATH": str(ROOT / "tests")}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return done.stdout + done.stderr, root


def test_a_run_prints_no_warning_from_the_known_sources(run_output):
    output, _ = run_output
    assert not [line for line in output.splitlines() if KNOWN.search(line)]


def test_each_run_ends_with_one_summary_line(run_output):
    output, root = run_output
    lines = [line for line in output.splitlines() if " done: test acc " in line]
    assert [line.split(" - ", 1)[1].split(" done:")[0] for line in lines] == [
        "teacher",
        "student-kd",
    ]
    student = lines[-1]
    assert re.search(r"test acc \d+\.\d % \(fp32\), \d+\.\d % \(deployed\)", student)
    assert re.search(r"deployed file [\d,]+ bytes, compression \d+\.\dx", student)
    run_id = re.search(r"MLflow run ([0-9a-f]{32})", student).group(1)
    assert f"mlflow ui --backend-store-uri sqlite:///{root}/mlruns/mlflow.db" in student
    assert student.endswith(f"#/experiments/1/runs/{run_id}")


def test_the_progress_bar_counts_epochs_out_of_the_total_and_the_time_left(run_output):
    output, _ = run_output
    screens = output.replace("\r", "\n")
    assert re.search(r"Epoch 1/2: .*left=\d\d:\d\d", screens)
    assert re.search(r"Epoch 2/2: 100%.*left=00:00", screens)


def test_auto_resolves_to_the_cpu_here_and_the_run_is_tagged_with_its_device(run_output):
    _, root = run_output
    cfg = make_cfg(root)
    assert cfg.trainer.accelerator == "auto"
    assert not torch.cuda.is_available()
    client = mlflow.MlflowClient(f"sqlite:///{root}/mlruns/mlflow.db")
    runs = client.search_runs(client.get_experiment_by_name("signdistill").experiment_id)
    assert len(runs) == 2
    assert {r.data.tags["device"] for r in runs} == {"cpu"}


def test_logging_the_model_prints_no_flat_weights_warning(tmp_path):
    tracking.configure(f"sqlite:///{tmp_path}/mlflow.db", "signdistill", str(tmp_path / "art"))
    with mlflow.start_run(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracking.log_pytorch_model(tiny_model(), torch.randn(2, 5, 40).numpy())
    assert not [w for w in caught if "_flat_weights" in str(w.message)]


def test_onnx_export_and_quantization_print_none_of_their_known_messages(tmp_path, caplog):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level(logging.INFO):
            export.export_onnx(tiny_model(), tmp_path / "m.onnx", torch.randn(2, 5, 40), {})
            export.quantize_int8(tmp_path / "m.onnx", tmp_path / "m.int8.onnx")
    assert [str(w.message) for w in caught if KNOWN.search(str(w.message))] == []
    assert [r.getMessage() for r in caplog.records] == []


def test_quiet_silences_only_the_named_messages():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with console.quiet():
            warnings.warn(
                "The tensor attributes self.lstms.0._flat_weights[0], "
                "self.lstms.0._flat_weights[1] were assigned during export. Such ...",
                UserWarning,
                stacklevel=1,
            )
            warnings.warn("something else about _flat_weights", UserWarning, stacklevel=1)
        warnings.warn("Found 3 module(s) in eval mode at the start", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == [
        "something else about _flat_weights",
        "Found 3 module(s) in eval mode at the start",  # outside the block: shown again
    ]


def test_the_quantizer_filter_keeps_other_libraries_records_and_real_warnings():
    def record(path: str, level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord("root", level, path, 1, message, None, None)

    keep = list(logging.getLogger().filters)
    with console.quiet_quantizer():
        (drop,) = [f for f in logging.getLogger().filters if f not in keep]
        quantizer = "/x/onnxruntime/quantization/quantize.py"
        assert not drop.filter(record(quantizer, logging.INFO, "Quantization parameters for"))
        assert not drop.filter(
            record(
                quantizer,
                logging.WARNING,
                "Please consider to run pre-processing before quantization. Refer",
            )
        )
        assert drop.filter(record(quantizer, logging.WARNING, "something unexpected"))
        assert drop.filter(record("/x/mine.py", logging.INFO, "Quantization parameters for"))
    assert logging.getLogger().filters == keep


def test_time_left_extrapolates_from_the_epochs_done():
    assert console.time_left(elapsed=30.0, epochs_done=0.0, epochs=10) is None
    assert console.time_left(elapsed=30.0, epochs_done=3.0, epochs=10) == pytest.approx(70.0)
    assert console.time_left(elapsed=30.0, epochs_done=10.0, epochs=10) == 0.0


def test_the_ui_hint_leaves_out_a_password_and_links_a_tracking_server():
    hint = console.ui_hint("postgresql://user:secret@db:5432/mlflow", "3", "abc")
    assert "secret" not in hint
    assert "postgresql://user:***@db:5432/mlflow" in hint  # the one redaction (urls.py)
    server = console.ui_hint("http://127.0.0.1:5000/", "3", "abc")
    assert server == "open http://127.0.0.1:5000/#/experiments/3/runs/abc"


def test_the_training_loss_is_the_epoch_mean_per_recording(tmp_path):
    """train_loss is summed in training_step and logged once per epoch: it must equal the
    recording-weighted mean of the step losses, as Lightning's on_epoch logging gave."""
    dm = SignDataModule(BlobSource(), batch_size=16, cache_dir=str(tmp_path))  # 56 = 16+16+16+8
    losses: list[tuple[float, int]] = []

    class Recorder(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            losses.append((float(outputs["loss"]), len(batch[0])))

    module = SignClassifier(tiny_model(), lambda p: torch.optim.Adam(p, lr=1e-2), max_epochs=1)
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[Recorder()],
    )
    trainer.fit(module, datamodule=dm)
    expected = sum(loss * n for loss, n in losses) / sum(n for _, n in losses)
    assert {n for _, n in losses} == {16, 8}
    assert float(trainer.callback_metrics["train_loss"]) == pytest.approx(expected, rel=1e-6)
