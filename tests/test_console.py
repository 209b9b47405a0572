"""What a run prints (issues #15, #26): the progress bar (the time left for the whole command,
on a line of its own), each library line once, no known-harmless warnings, one short summary line
naming the run's page in the UI; and the device it trained on (``trainer.accelerator=auto``)."""

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

from signdistill import console, export, plan, tracking
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
    the default distilled student) on tiny data, and its root folder. Its stdout and stderr as
    one stream, carriage returns kept: what a terminal shows."""
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
    env = os.environ | {"PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in ("src", "tests"))}
    done = subprocess.run(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=True
    )
    return done.stdout.decode(), root


def screen(output: str) -> list[str]:
    """The lines a terminal ends up showing: within a line, a carriage return goes back to its
    start and what follows overwrites what was there (cursor moves up are dropped)."""
    lines = []
    for line in output.split("\n"):
        shown = ""
        for part in line.replace("\x1b[A", "").split("\r"):
            shown = part + shown[len(part) :]
        lines.append(shown.rstrip())
    return lines


def test_a_run_prints_no_warning_from_the_known_sources(run_output):
    output, _ = run_output
    assert not [line for line in output.splitlines() if KNOWN.search(line)]


def test_each_run_ends_with_one_short_summary_line_naming_its_page_in_the_ui(run_output):
    output, root = run_output
    lines = [line for line in output.splitlines() if " done: test acc " in line]
    assert [line.split(" - ", 1)[1].split(" done:")[0] for line in lines] == [
        "teacher",
        "student-kd",
    ]
    student = lines[-1].split(" - ", 1)[1]
    assert re.search(r"test acc \d+\.\d % \(fp32\), \d+\.\d % deployed, [\d,]+ bytes", student)
    assert re.search(r"compression \d+\.\dx \| http://127\.0\.0\.1:5000/#/experiments/1/", student)
    runs = mlflow.MlflowClient(f"sqlite:///{root}/mlruns/mlflow.db").search_runs(["1"])
    run_id = next(r.info.run_id for r in runs if r.data.tags["kind"] == "student-kd")
    page = f"http://127.0.0.1:5000/#/experiments/1/runs/{run_id}?workflowType=machine_learning"
    store = f"sqlite:///{root}/mlruns/mlflow.db"
    assert student.endswith(f"{page} (mlflow ui --backend-store-uri {store})")
    assert len(student) - len(store) - len(page) < 140  # the rest stays short


def test_the_progress_bar_counts_epochs_and_models_and_the_time_left(run_output):
    output, _ = run_output
    shown = screen(output)
    assert any(re.search(r"^teacher \(1/2\) Epoch 1/2: .*left=\d\d:\d\d", line) for line in shown)
    assert any(
        re.search(r"^student-kd \(2/2\) Epoch 2/2: 100%.*left=00:00", line) for line in shown
    )


def test_the_bar_ends_on_its_own_line_and_lines_logged_mid_bar_get_theirs(run_output):
    output, _ = run_output
    shown = screen(output)
    logged = [
        line for line in shown if "`Trainer.fit` stopped" in line or " done: test acc " in line
    ]
    assert len(logged) == 4  # two models: each stops, then sums up
    assert all(line.startswith("[") and "Epoch" not in line for line in logged), logged
    bars = [line for line in shown if "Epoch 2/2: 100%" in line]
    assert bars and all(line.endswith("]") for line in bars), bars  # nothing runs into a bar


def test_each_library_info_line_prints_once(run_output):
    output, _ = run_output
    shown = [line for line in screen(output) if line]
    assert not [line for line in shown if line.startswith("INFO: ")]  # Lightning's own handler
    assert sum("Seed set to 0" in line for line in shown) == 2  # once per model trained
    assert sum("GPU available: False" in line for line in shown) == 2


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


def test_a_slow_first_batch_does_not_put_hours_on_the_time_left():
    speed, whole = console.EpochSpeed(), console.Plan([console.Stage("teacher", 200)])
    stage = whole.start("teacher", 200)
    speed.update(60.0, 1 / 55)  # the first of 55 batches took a minute (warm-up)
    assert whole.left(stage, 1 / 55, speed.per_epoch) is None  # nothing measured yet
    for batch in range(2, 56):  # the others 0.1 s each
        speed.update(60.0 + 0.1 * (batch - 1), batch / 55)
        left = whole.left(stage, batch / 55, speed.per_epoch)
        assert left == pytest.approx(5.5 * (200 - batch / 55))  # 18 minutes, from batch 2 on
    # extrapolating the elapsed time instead (the old estimate) said 18 hours after batch 2
    assert 60.1 / (2 / 55) * (200 - 2 / 55) > 18 * 3600


def test_the_time_left_covers_the_models_still_to_come():
    teacher, student = console.Stage("teacher", 200, work=3.0), console.Stage("student-kd", 150)
    student.work = 1.0
    whole = console.Plan([teacher, student])
    assert whole.start("teacher", 200) is teacher
    assert whole.label(teacher) == "teacher (1/2) "
    # 6 s an epoch for 3 units of work: the student's 150 epochs of 1 unit take 2 s each
    assert whole.left(teacher, 100.0, per_epoch=6.0) == pytest.approx(100 * 6.0 + 150 * 2.0)
    whole.finish(teacher)
    assert whole.start("student-kd", 150) is student
    assert whole.left(student, 0.0, per_epoch=None) == pytest.approx(150 * 2.0)  # its prior
    assert whole.left(student, 50.0, per_epoch=1.5) == pytest.approx(100 * 1.5)  # then its own


def test_a_model_the_plan_did_not_foresee_is_timed_on_its_own():
    whole = console.Plan([console.Stage("student-kd", 10, work=1.0)])
    extra = whole.start("teacher", 5)
    assert [s.kind for s in whole.stages] == ["teacher", "student-kd"]
    assert whole.left(extra, 1.0, per_epoch=2.0) == pytest.approx(4 * 2.0)  # its own time only
    assert console.Plan().label(console.Plan().start("teacher", 5)) == ""  # one model: no label


def test_the_plan_trains_a_missing_teacher_first_and_weighs_each_model(tmp_path):
    from signdistill.settings import compose

    settings = compose(make_cfg(tmp_path))
    dm = settings.data
    dm.prepare()
    first = plan.plan(settings, dm)
    assert [(s.kind, s.epochs) for s in first.stages] == [("teacher", 3), ("student-kd", 3)]
    teacher, student = (s.work for s in first.stages)
    assert 0 < student < teacher  # a smaller model, even with its teacher run on every batch
    job = first.stages[0]
    assert job.work == pytest.approx(
        len(dm.tensors("train")[1]) * 3 * plan.macs(settings.teacher.model, dm)
        + len(dm.tensors("val")[1]) * plan.macs(settings.teacher.model, dm)
    )
    from signdistill import teachers

    side = teachers.side_job(settings.teacher, settings.seed)
    key = teachers.teacher_key(side.network, side.recipe, dm.describe(), side.seed)
    stored = tmp_path / "mlruns" / "teachers" / key / teachers.TEACHER_FILE
    stored.parent.mkdir(parents=True)
    stored.touch()
    assert [s.kind for s in plan.plan(settings, dm).stages] == ["student-kd"]  # stored: not trained


def test_multiply_accumulates_of_each_layer():
    from torch import nn

    net = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Flatten(), nn.Linear(4 * 8, 5))
    assert plan.forward_macs(net, (1, 2, 10)) == 4 * 8 * 2 * 3 + 5 * 32
    lstm = nn.LSTM(6, 7, num_layers=2, batch_first=True)
    x = torch.zeros(1, 9, 6)
    assert plan.layer_macs(lstm, x, lstm(x)) == 9 * 4 * 7 * ((6 + 7) + (7 + 7))


def test_the_ui_hint_leaves_out_a_password_and_links_the_run_in_the_model_training_view():
    hint = console.ui_hint("postgresql://user:secret@db:5432/mlflow", "3", "abc")
    assert "secret" not in hint
    assert "postgresql://user:***@db:5432/mlflow" in hint  # the one redaction (urls.py)
    server = console.ui_hint("http://127.0.0.1:5000/", "3", "abc")
    assert server == "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    project = console.ui_hint(f"sqlite:///{ROOT}/mlruns/mlflow.db", "3", "abc")
    assert project.endswith("/#/experiments/3/runs/abc?workflowType=machine_learning (make ui)")


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
