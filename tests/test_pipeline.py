"""End to end through the pipeline (in-process, tiny data): runs, teachers, MLflow records."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch

from signdistill.checkpoints import load_model, save_model
from signdistill.config import validate
from signdistill.data.datamodule import SignDataModule
from signdistill.distill import teacher_logits
from signdistill.errors import ConfigError, DataError
from signdistill.models import Architecture, ConvPoolLSTM
from signdistill.module import SignClassifier
from signdistill.pipeline import run
from signdistill.pruning import prune
from signdistill.settings import compose

from pipeline_helpers import CONF, make_cfg, runs

SUMMARY = ("val_acc", "test_acc", "test_macro_f1", "params", "size_fp32_bytes", "size_file_bytes")


def test_teacher_then_students_log_accuracy_and_size(tmp_path):
    teacher = run(make_cfg(tmp_path, "model=teacher", "train.max_epochs=20"))
    kd = run(
        make_cfg(tmp_path, "model=student", "distill.temperature=4", "teacher.train.max_epochs=20")
    )
    scratch = run(make_cfg(tmp_path, "model=student", "distill=none"))

    df = runs(tmp_path).set_index("run_id")
    assert len(df) == 3  # the students reused the stored teacher: no second teacher run
    assert set(df["status"]) == {"FINISHED"}
    for result, kind in ((teacher, "teacher"), (kd, "student-kd"), (scratch, "student-scratch")):
        row = df.loc[result["mlflow_run_id"]]
        assert row["tags.kind"] == kind
        for key in (*SUMMARY, "compression_ratio"):  # the table shows the summary, not an epoch
            assert row[f"metrics.{key}"] == pytest.approx(result[key])
    assert float(df.loc[kd["mlflow_run_id"], "params.distill.temperature"]) == 4.0
    assert df.loc[kd["mlflow_run_id"], "tags.teacher_run_id"] == teacher["mlflow_run_id"]
    assert kd["params"] < teacher["params"]
    for student in (kd, scratch):  # the configured teacher's size, trained or not
        assert student["compression_ratio"] == pytest.approx(teacher["params"] / student["params"])
    assert kd["size_fp32_bytes"] == 4 * kd["params"]
    for result in (teacher, kd, scratch):  # what a device would run, measured
        assert 0 <= result["test_acc_int8"] <= 1 and result["onnx_same_predictions"] == 1.0
    # int8 pays off for the teacher; for a ~1k-parameter student its scales and extra nodes
    # can outweigh the saved bytes, which is why the size is measured, not assumed
    assert teacher["size_int8_bytes"] < teacher["size_onnx_bytes"]
    assert teacher["test_acc"] > 0.5  # the blobs are learnable: the loop really trains


def test_student_without_a_teacher_trains_one_first(tmp_path, caplog, recwarn):
    with caplog.at_level("WARNING"):
        result = run(make_cfg(tmp_path))
    assert "No teacher fits" in caplog.text
    # the frozen teacher's eval mode is intended: Lightning's warning about it is not shown
    assert not [w for w in recwarn if "in eval mode" in str(w.message)]
    df = runs(tmp_path)
    assert sorted(df["tags.kind"]) == ["student-kd", "teacher"]
    teacher_id = df.loc[df["tags.kind"] == "teacher", "run_id"].item()
    student = df.loc[df["run_id"] == result["mlflow_run_id"]].iloc[0]
    assert student["tags.teacher_run_id"] == teacher_id
    # the default recipe augments, so the teacher runs on the student's batches (consistent)
    assert student["tags.teacher_logits"] == "online"


def test_ensemble_teacher_trains_each_member_and_logs_its_own_accuracy(tmp_path):
    result = run(make_cfg(tmp_path, "teacher.seeds=[0,1]", "+recipe=kd"))
    df = runs(tmp_path).set_index("run_id")
    members = df[df["tags.kind"] == "teacher"]
    assert len(members) == 2
    assert set(members["params.seed"]) == {"0", "1"}
    student = df.loc[result["mlflow_run_id"]]
    assert student["tags.recipe"] == "kd" and student["tags.mlflow.runName"] == "kd"
    assert student["tags.teacher_logits"] == "cached"  # the fast recipe: clean data
    assert set(student["tags.teacher_run_id"].split(",")) == set(members.index)
    assert 0 <= result["teacher_test_acc"] <= 1
    ensemble_params = members["metrics.params"].sum()
    assert result["compression_ratio"] == pytest.approx(ensemble_params / result["params"])


def test_fixed_schedule_trains_every_epoch_and_tests_the_last_weights(tmp_path):
    cfg = make_cfg(tmp_path, "model=teacher", "train.restore=last")
    result = run(cfg)
    row = runs(tmp_path).set_index("run_id").loc[result["mlflow_run_id"]]
    assert row["metrics.epoch"] == cfg.train.max_epochs - 1  # no early stop


def test_same_seed_same_result(tmp_path):
    first = run(make_cfg(tmp_path / "a", "model=teacher"))
    second = run(make_cfg(tmp_path / "b", "model=teacher"))
    assert first["val_acc"] == second["val_acc"] and first["test_acc"] == second["test_acc"]


@pytest.mark.parametrize("recover", ["kd", "finetune"])
def test_pruned_teacher_is_recovered_for_its_epochs_and_points_at_its_source(tmp_path, recover):
    overrides = [
        "model=teacher",
        "prune=slim",
        "prune.recover_epochs=2",
        f"prune.recover={recover}",
    ]
    pruned = run(make_cfg(tmp_path, *overrides))
    df = runs(tmp_path).set_index("run_id")
    assert len(df) == 2  # the sparsity-trained base model, then the pruned and recovered one
    row = df.loc[pruned["mlflow_run_id"]]
    base = df.loc[row["tags.pruned_from"]]
    assert row["tags.kind"] == f"pruned-{recover}" and base["tags.kind"] == "teacher"
    # recorded as what was trained: the pruned network's role and sizes, not the teacher spec's
    assert row["tags.role"] == "pruned" and row["tags.task"] == "prune"
    assert row["params.model.role"] == "pruned"
    assert row["params.model.hidden_sizes"] == row["params.arch.hidden_sizes"]
    assert row["params.model.conv_channels"] == row["params.arch.conv_channels"]
    assert pd.isna(row["params.model.conv1"])  # the base teacher's spec logs it; this run not
    assert row["metrics.epoch"] == 1  # prune.recover_epochs, not the recipe's 3
    assert base["params.arch.conv_batchnorm"] == "True"
    # what a researcher needs to see of the sparse model: histograms and the fraction over epochs
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    figures = {a.path for a in client.list_artifacts(base.name, "sparsity")}
    assert figures == {"sparsity/group_norms_start.png", "sparsity/group_norms_end.png"}
    assert len(client.get_metric_history(base.name, "sparsity_all")) == 3  # one per epoch
    assert 0 <= pruned["sparse_below_threshold"] <= 1
    assert 0 <= pruned["test_acc_pruned_below_threshold"] <= 1
    assert pruned["params"] < base["metrics.params"]
    assert pruned["compression_ratio"] > 1
    assert 0 <= pruned["test_acc_before_recovery"] <= 1
    # KD recovery learns from the unpruned model; fine-tuning from the labels alone
    assert (row.get("tags.teacher_logits") == "online") == (recover == "kd")
    assert (row.get("tags.teacher_run_id") == base.name) == (recover == "kd")


def test_recovery_starts_from_the_pruned_weights(tmp_path):
    # a learning rate of 0 keeps every weight where recovery started
    overrides = ["model=teacher", "prune=slim", "prune.recover_epochs=1", "train.optimizer.lr=0"]
    cfg = make_cfg(tmp_path, *overrides)
    pruned = run(cfg)
    base_id = runs(tmp_path).set_index("run_id").loc[pruned["mlflow_run_id"], "tags.pruned_from"]
    recovered, base = (model_of(tmp_path, run_id) for run_id in (pruned["mlflow_run_id"], base_id))
    expected = prune(base, cfg.prune.amount, cfg.prune.scope, cfg.prune.floor)
    params = dict(recovered.named_parameters())
    for name, value in expected.named_parameters():
        assert torch.equal(params[name], value), name


def test_distill_none_trains_no_teacher(tmp_path):
    result = run(make_cfg(tmp_path, "distill=none"))
    df = runs(tmp_path)
    assert df["tags.kind"].tolist() == ["student-scratch"]
    assert "tags.teacher_run_id" not in df.columns or df["tags.teacher_run_id"].isna().all()
    assert result["compression_ratio"] > 1  # the configured teacher's size, from its architecture


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("distill.temperature=0", "distill.temperature"),
        ("distill.temperature=-2", "distill.temperature"),
        ("distill.alpha=1.5", "distill.alpha"),
        ("distill.alpha=-0.1", "distill.alpha"),
        ("distill=dkd distill.beta=-1", "distill.beta"),
        ("+distill.loss=kdd", "distill.loss"),
        ("model.width=0", "model.width"),
        ("teacher.model.width=-1", "teacher.model.width"),
        ("+model.typo=1", "model.typo"),
        ("model.dropout=1.5", "model.dropout"),
        ("prune=slim prune.amount=1.0", "prune.amount"),
        ("prune=slim prune.amount=half", "prune.amount"),
        ("prune=slim prune.scope=globl", "prune.scope"),
        ("prune=slim prune.sparsity.mode=loc", "prune.sparsity.mode"),
        ("prune=slim prune.recover=kd distill=none", "prune.recover"),
        ("export.deploy=int9", "export.deploy"),
        ("export.int8=false", "export.deploy=int8"),
        ("export.latency_runs=-5", "export.latency_runs"),
        ("train.restore=first", "train.restore"),
        ("train.augment.mixup=-1", "train.augment.mixup"),
        ("train.max_epochs=0", "train.max_epochs"),
        ("teacher.seeds=[]", "teacher.seeds"),
        ("seed=abc", "seed"),
        ("seed=1.5", "seed"),
        ("+typo=1", "typo"),
        ("data.batch_size=abc", "data.batch_size"),
        ("+trainer.acelerator=cpu", "trainer.acelerator"),
        ("+trainer.max_epochs=0", "trainer.max_epochs"),  # the recipe's: train.max_epochs
        ("+trainer.callbacks=[]", "trainer.callbacks"),
        ("trainer.devices=0", "trainer.devices"),  # Lightning's own checks
        ("+trainer.precision=17", "trainer.precision"),
        ("train.optimizer.lr=-1", "train.optimizer.lr"),  # torch's own checks
        ("+teacher.train.optimizer.betas=[2,0.9]", "teacher.train.optimizer.betas"),
        ("train.optimizer.weight_decay=-0.1", "train.optimizer.weight_decay"),
        ("train.scheduler._target_=torch.optim.lr_scheduler.StepLR", "train.scheduler"),
        ("model.width=0.001", "model.width"),  # every layer would round to 0 units
        ("teacher.model.width=0.004", "teacher.model.width"),
        ("seed=${oops}", "seed"),  # an interpolation that does not resolve
    ],
)
def test_invalid_config_fails_before_any_data_naming_the_key(tmp_path, override, key, monkeypatch):
    loads = []
    monkeypatch.setattr("fakes.BlobSource.load", lambda *args: loads.append(args))
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}\b"):
        validate(make_cfg(tmp_path, *override.split()))
    assert not loads  # refused before any data is read


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ("model=student prune=slim", "prune.amount"),  # a student is not pruned
        ("model=student_tiny prune=slim prune.amount=0.7", "prune.amount"),
        ("model=teacher prune=slim model.conv1=16", "model.conv1"),  # prunes teacher.model
        ("model=inception model@teacher.model=inception prune=slim", "prune.amount"),
        ("prune@teacher.prune=slim model@teacher.model=inception", "teacher.prune.amount"),
    ],
)
def test_a_prune_run_of_anything_but_the_teacher_is_refused_before_any_work(
    tmp_path, overrides, key, monkeypatch
):
    loads = []
    monkeypatch.setattr("fakes.BlobSource.load", lambda *args: loads.append(args))
    small = "inception" not in overrides  # the Conv-LSTM teacher's sizes are not InceptionTime's
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}\b"):
        compose(make_cfg(tmp_path, *overrides.split(), small_teacher=small))
    assert not loads


def test_a_prune_run_prunes_the_teacher_sized_on_teacher_model_alone(tmp_path):
    """``model=teacher prune=slim teacher.model.conv1=4``: the model file's default sizes on
    ``model.*`` are not a request for another model; the run prunes the teacher as sized."""
    cfg = make_cfg(
        tmp_path, "model=teacher", "prune=slim", "teacher.model.conv1=4", small_teacher=False
    )
    settings = compose(cfg)
    assert settings.task == "prune"
    assert settings.teacher.model.conv1 == 4


def test_runs_are_named_by_their_model_and_deployed_metrics_use_the_right_split(
    tmp_path, monkeypatch
):
    """The test recordings get wrong labels here, so a figure measured on the wrong split shows:
    validation accuracy stays high and test accuracy drops, for PyTorch and the deployed file."""
    tensors = SignDataModule.tensors

    def wrong_test_labels(self, part):
        x, y = tensors(self, part)
        return (x, (y + 1) % len(self.classes)) if part == "test" else (x, y)

    monkeypatch.setattr(SignDataModule, "tensors", wrong_test_labels)
    result = run(make_cfg(tmp_path, "model=student_tiny", "distill=none", "train.max_epochs=25"))
    row = runs(tmp_path).set_index("run_id").loc[result["mlflow_run_id"]]
    assert row["tags.mlflow.runName"] == row["tags.kind"] == "student_tiny-scratch"
    assert row["tags.role"] == "student" and row["params.model.name"] == "student_tiny"
    assert result["val_acc"] >= 0.6 and result["test_acc"] <= 0.3
    for deployed in ("int8", "deployed"):
        assert result[f"val_acc_{deployed}"] >= 0.5, deployed
        assert result[f"test_acc_{deployed}"] <= 0.35, deployed


def test_architecture_too_deep_for_the_recordings_is_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.kernel_size/model\.pool"):
        run(make_cfg(tmp_path, "model.pool=40"))
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # nothing was trained or logged


@pytest.mark.parametrize("recipe", sorted(p.stem for p in (CONF / "recipe").glob("*.yaml")))
def test_every_named_recipe_is_a_valid_config_tagged_with_its_name(tmp_path, recipe):
    cfg = make_cfg(tmp_path, f"+recipe={recipe}")
    validate(cfg)
    assert cfg.recipe == recipe  # runs are named and tagged by it: a copied file must not lie


def test_teacher_checkpoint_for_other_channels_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    save_model(path, ConvPoolLSTM(Architecture(7, 4)), {"classes": ["a"], "channels": ["x"] * 7})
    with pytest.raises(DataError, match=r"teacher\.checkpoint"):
        run(make_cfg(tmp_path, f"teacher.checkpoint={path}"))


def test_crash_marks_the_run_failed(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("signdistill.module.SignClassifier.training_step", boom)
    with pytest.raises(RuntimeError, match="boom"):
        run(make_cfg(tmp_path, "model=teacher"))
    assert runs(tmp_path)["status"].tolist() == ["FAILED"]


def test_cached_teacher_logits_equal_a_fresh_forward_pass():
    teacher = ConvPoolLSTM(Architecture(5, 4, (4, 4), (8, 8)))
    x = torch.randn(700, 5, 40)
    teacher.train()  # teacher_logits must switch off dropout and batch statistics itself
    cached = teacher_logits(teacher, x, batch=256)
    assert not teacher.training
    with torch.no_grad():
        assert torch.allclose(cached, teacher(x), atol=1e-6)


def model_of(root, run_id: str) -> ConvPoolLSTM:
    """The weights file a run logged."""
    import mlflow

    path = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="model.pt", tracking_uri=f"sqlite:///{root}/mlruns/mlflow.db"
    )
    return load_model(Path(path))[0]


def test_the_thread_setting_reaches_torch_while_training(tmp_path, monkeypatch):
    step, seen = SignClassifier.training_step, set()

    def spy(self, batch, index):
        seen.add(torch.get_num_threads())
        return step(self, batch, index)

    monkeypatch.setattr(SignClassifier, "training_step", spy)
    before = torch.get_num_threads()
    try:
        run(make_cfg(tmp_path, "model=teacher", "threads=3", "train.max_epochs=1"))
    finally:
        torch.set_num_threads(before)
    assert seen == {3}
    assert runs(tmp_path)["tags.threads"].tolist() == ["3"]  # the count used, for the record


def test_a_deployed_file_that_loses_too_much_is_said_and_tagged(tmp_path, monkeypatch, caplog):
    sentence = "The deployed statically quantized int8 file classifies 50.0 % ..."
    seen = []

    def fires(metrics, settings):
        seen.append(metrics["val_acc_deployed"])  # judged on what the run measured
        return sentence

    monkeypatch.setattr("signdistill.export.deploy_warning", fires)
    with caplog.at_level("INFO"):
        result = run(make_cfg(tmp_path, "model=teacher"))
    row = runs(tmp_path).set_index("run_id").loc[result["mlflow_run_id"]]
    assert row["tags.deploy_warning"] == sentence
    assert f"WARNING: {sentence}" in caplog.text
    assert seen == [result["val_acc_deployed"]]


def test_a_student_learns_from_a_pruned_teacher_stored_once_as_an_assistant(tmp_path):
    assistant = ["prune@teacher.prune=slim", "teacher.prune.recover_epochs=1", "+recipe=kd"]
    first = run(make_cfg(tmp_path, *assistant))
    second = run(make_cfg(tmp_path, *assistant, "distill.temperature=2"))
    df = runs(tmp_path).set_index("run_id")
    pruned = df[df["tags.role"] == "pruned"]
    assert len(pruned) == 1  # trained once, then found in the teacher store
    assert sorted(df["tags.kind"]) == ["pruned-kd", "student-kd", "student-kd", "teacher"]
    for student in (first, second):
        row = df.loc[student["mlflow_run_id"]]
        assert row["tags.teacher_run_id"] == pruned.index[0]
        assert student["teacher_test_acc"] == pytest.approx(pruned["metrics.test_acc"].iloc[0])
    sparse = df.loc[pruned["tags.pruned_from"].iloc[0]]
    assert sparse["params.arch.conv_batchnorm"] == "True"  # the sparsity-trained teacher
    assert pruned["metrics.params"].iloc[0] < sparse["metrics.params"]


def test_a_student_learns_from_an_inceptiontime_teacher(tmp_path):
    inception = [
        "model@teacher.model=inception",
        "teacher.model.depth=3",
        "teacher.model.filters=4",
        "teacher.model.bottleneck=4",
        "teacher.model.kernel_sizes=[9,5,3]",
    ]
    for recipe in ("+recipe=kd", "+recipe=kd_consistent"):  # cached logits, online teacher
        run(make_cfg(tmp_path, *inception, recipe, small_teacher=False))
    df = runs(tmp_path)
    teachers = df[df["tags.role"] == "teacher"]
    assert teachers["tags.kind"].tolist() == ["inception"]  # stored once, found the second time
    students = df[df["tags.role"] == "student"].set_index("tags.recipe")
    assert students.loc["kd", "tags.teacher_logits"] == "cached"
    assert students.loc["kd_consistent", "tags.teacher_logits"] == "online"
    assert set(students["tags.teacher_run_id"]) == set(teachers["run_id"])


def test_short_epochs_validate_every_few_steps_and_the_last_epoch_always(tmp_path):
    """7 steps an epoch, validation every 14: every second epoch, the epochs rounded up to 4 so
    that the last one validates (its weights are the ones a fixed schedule keeps)."""
    cfg = make_cfg(tmp_path, "model=teacher", "train.val_every_steps=14", "train.restore=last")
    result = run(cfg)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    run_id = result["mlflow_run_id"]
    params = client.get_run(run_id).data.params
    assert (params["schedule.epochs"], params["schedule.val_every"]) == ("4", "2")
    epochs = [m.value for m in client.get_metric_history(run_id, "epoch")]
    assert max(epochs) == 3  # 3 recipe epochs rounded up to 4
    assert len(client.get_metric_history(run_id, "train_loss")) == 2
    assert len(client.get_metric_history(run_id, "val_acc")) == 2 + 1  # and the run's summary
