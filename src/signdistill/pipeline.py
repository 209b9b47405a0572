"""One run of the study: train a teacher, or distill a student from one (training it first if no
stored teacher fits the data), and log accuracy against size to MLflow."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf, open_dict

from signdistill import export, pruning, teachers, tracking
from signdistill.augment import Augment
from signdistill.checkpoints import load_model, save_model
from signdistill.config import ConfigError, validate
from signdistill.data.datamodule import SignDataModule
from signdistill.distill import Distillation
from signdistill.models import Architecture, ConvPoolLSTM, scaled_sizes
from signdistill.module import SignClassifier
from signdistill.sizes import size_metrics
from signdistill.sparsity import SparsityRegularizer, sparsity_stats

log = logging.getLogger(__name__)


@dataclass
class Trained:
    """A finished run: its MLflow id, the model with its best weights, and its summary metrics."""

    run_id: str
    model: ConvPoolLSTM
    metrics: dict[str, float]


def architecture(mcfg: DictConfig, dm: SignDataModule) -> Architecture:
    """The model config's sizes, scaled by ``width``; channels and classes from the data."""
    c1, c2, h = scaled_sizes((mcfg.conv1, mcfg.conv2, mcfg.hidden), mcfg.width)
    return Architecture(
        in_channels=len(dm.channels),
        n_classes=len(dm.classes),
        conv_channels=(c1, c2),
        hidden_sizes=(h,) * mcfg.lstm_layers,
        kernel_size=mcfg.kernel_size,
        pool=mcfg.pool,
        dropout=mcfg.dropout,
        conv_batchnorm=mcfg.conv_batchnorm,
    )


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train what ``cfg.model`` describes; returns its summary metrics and ``mlflow_run_id``."""
    validate(cfg)
    dm: SignDataModule = instantiate(cfg.data)
    dm.prepare()
    for role in ("model", "teacher"):
        arch = architecture(cfg[role], dm)
        length = dm.recordings.x.shape[2]
        if length < arch.min_length():
            raise ConfigError(
                f"{role}.kernel_size/{role}.pool: recordings of {length} steps are too short "
                f"for this architecture (needs >= {arch.min_length()})"
            )
    experiment_id = tracking.configure(
        cfg.logger.tracking_uri, cfg.logger.experiment_name, cfg.logger.artifact_root
    )
    if cfg.prune.amount > 0:
        result = prune_and_recover(cfg, dm, experiment_id)
    elif cfg.model.role == "teacher":
        result = obtain_teacher(cfg, dm, experiment_id, model_node="model", retrain=True)
    else:
        teacher = distillation_teacher(cfg, dm, experiment_id)
        result = train(cfg, "model", dm, experiment_id, teacher=teacher)
    return {**result.metrics, "mlflow_run_id": result.run_id}


def obtain_teacher(
    cfg: DictConfig, dm: SignDataModule, experiment_id: str, model_node: str, retrain: bool
) -> Trained:
    """The stored teacher for this data, split, config and seed; trained (once) if missing.

    ``retrain`` (an explicit ``model=teacher`` run) trains and replaces it even when stored.
    """
    if cfg.distill.get("teacher_checkpoint") and not retrain:
        return _load_teacher(Path(cfg.distill.teacher_checkpoint), dm, "distill.teacher_checkpoint")
    mcfg = OmegaConf.to_container(cfg[model_node], resolve=True)
    key = teachers.teacher_key(mcfg, dm.describe(), cfg.seed)
    path = teachers.teacher_path(cfg.paths.teachers, key)
    with teachers.lock(cfg.paths.teachers, key):
        if path.exists() and not retrain:
            log.info("Using the stored teacher %s", path)
            return _load_teacher(path, dm, str(path))
        if not retrain:
            log.warning(
                "No teacher fits this data, split and teacher config yet: training one first "
                "(its own MLflow run), stored as %s",
                path,
            )
        return train(cfg, model_node, dm, experiment_id, store_as=path)


def distillation_teacher(cfg: DictConfig, dm: SignDataModule, experiment_id: str) -> Trained:
    """The teacher a student learns from: the stored teacher for the run's seed, or with
    ``distill.teacher_seeds`` an ensemble of the teachers of those seeds (each trained if missing).

    The ensemble's metrics are its own accuracy on this split; its size is the members' total.
    """
    seeds = cfg.distill.get("teacher_seeds")
    if not seeds:
        return obtain_teacher(cfg, dm, experiment_id, model_node="teacher", retrain=False)
    members = []
    for seed in seeds:
        member_cfg = cfg.copy()
        with open_dict(member_cfg):
            member_cfg.seed = int(seed)
        members.append(obtain_teacher(member_cfg, dm, experiment_id, "teacher", retrain=False))
    ensemble = teachers.TeacherEnsemble([m.model for m in members]).eval()
    metrics = {f"{split}_acc": accuracy(ensemble, *dm.tensors(split)) for split in ("val", "test")}
    metrics["size_file_bytes"] = sum(m.metrics["size_file_bytes"] for m in members)
    return Trained(",".join(m.run_id for m in members), ensemble, metrics)


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of recordings ``model`` (in eval mode) classifies correctly."""
    return float((model.eval()(x).argmax(1) == y).float().mean())


def prune_and_recover(cfg: DictConfig, dm: SignDataModule, experiment_id: str) -> Trained:
    """Sparsity-train the teacher (stored like any teacher), prune it, recover the pruned model.

    Recovery is KD from the unpruned sparse model (``prune.recover=kd``) or hard labels only
    (``finetune``); its run is tagged ``pruned_from`` the unpruned model's run.
    """
    p = cfg.prune
    if p.recover not in ("kd", "finetune"):
        raise ConfigError(f"prune.recover={p.recover!r}: expected 'kd' or 'finetune'")
    with open_dict(cfg):
        cfg.sparse_base = OmegaConf.merge(
            cfg.teacher, {"conv_batchnorm": True, "sparsity": p.sparsity, "role": "teacher"}
        )
        cfg.model.max_epochs = p.recover_epochs
    base = obtain_teacher(cfg, dm, experiment_id, model_node="sparse_base", retrain=False)
    smaller = pruning.prune(base.model, p.amount, p.scope, p.floor)
    log.info("pruned %s -> %s", base.model.arch, smaller.arch)
    before = accuracy(smaller, *dm.tensors("test"))
    if p.recover == "finetune":
        with open_dict(cfg):
            cfg.distill.enabled = False
    return train(
        cfg,
        "model",
        dm,
        experiment_id,
        teacher=base,
        init=smaller,
        extra_tags={"pruned_from": base.run_id, "kind": f"pruned-{p.recover}"},
        extra_metrics={"test_acc_before_recovery": before},
    )


def _load_teacher(path: Path, dm: SignDataModule, where: str) -> Trained:
    if not path.exists():
        raise ConfigError(f"{where}={path}: no such file")
    model, meta = load_model(path)
    teachers.check_fits(meta, dm.classes, dm.channels, f"{where}={path}")
    return Trained(meta["run_id"], model, meta["metrics"])


@torch.no_grad()
def teacher_logits(teacher: torch.nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """The frozen teacher's logits for every training recording (computed once per run)."""
    teacher.eval()
    return torch.cat([teacher(x[i : i + batch]) for i in range(0, len(x), batch)])


def train(
    cfg: DictConfig,
    model_node: str,
    dm: SignDataModule,
    experiment_id: str,
    teacher: Trained | None = None,
    store_as: Path | None = None,
    init: ConvPoolLSTM | None = None,
    extra_tags: dict[str, str] | None = None,
    extra_metrics: dict[str, float] | None = None,
) -> Trained:
    """Fit, restore the best validation weights, test, and log everything as one MLflow run.

    ``init`` starts from given weights (a pruned model) instead of a fresh ``model_node``.
    """
    mcfg = cfg[model_node]
    L.seed_everything(cfg.seed, workers=True)
    if init is None:
        model = ConvPoolLSTM(architecture(mcfg, dm))
        model.normalize.fit(*dm.channel_stats())
    else:
        model = init.train()
    augment = Augment(**mcfg.augment)
    distill = None
    if teacher is not None and cfg.distill.enabled:
        d = cfg.distill
        distill = Distillation(d.temperature, d.alpha, d.loss, d.beta)
    online = distill is not None and (augment.enabled or not cfg.distill.cache_logits)
    cached = distill is not None and not online
    dm.set_teacher_logits(teacher_logits(teacher.model, dm.tensors("train")[0]) if cached else None)
    module = SignClassifier(
        model,
        instantiate(mcfg.optimizer),
        max_epochs=mcfg.max_epochs,
        cosine=mcfg.cosine,
        label_smoothing=mcfg.label_smoothing,
        augment=augment,
        distill=distill,
        teacher=teacher.model if online else None,
    )
    if teacher is not None:  # the accuracy of what the student learns from, on this split
        extra_metrics = {
            "teacher_val_acc": teacher.metrics["val_acc"],
            "teacher_test_acc": teacher.metrics["test_acc"],
            **(extra_metrics or {}),
        }
    role = mcfg.role
    kind = role if role == "teacher" else ("student-kd" if distill else "student-scratch")
    tags = {
        "role": role,
        "kind": kind,
        "git_commit": tracking.git_commit(Path(cfg.paths.root)),
        "data": dm.name,
        "data_fingerprint": dm.describe()["fingerprint"],
    }
    if teacher is not None:
        tags["teacher_run_id"] = teacher.run_id
    if distill is not None:  # cached once on clean data, or the teacher run on every batch
        tags["teacher_logits"] = "online" if online else "cached"
    tags |= extra_tags or {}
    kind = tags["kind"]
    if cfg.sweep.trial_number is not None and role != "teacher":
        tags["optuna.trial_number"] = str(cfg.sweep.trial_number)
        tags["optuna.study_name"] = str(cfg.sweep.study_name)
    parent = cfg.sweep.parent_run_id if role != "teacher" else None
    if role != "teacher" and cfg.recipe:
        tags["recipe"] = cfg.recipe
    name = (
        f"trial-{cfg.sweep.trial_number}"
        if parent and cfg.sweep.trial_number is not None
        else tags.get("recipe", kind)
    )
    with tracking.run(experiment_id, name, tags, parent) as active, tracking.scratch_dir() as tmp:
        tracking.log_config(cfg)
        mlflow.log_params({f"arch.{k}": v for k, v in model.arch.as_dict().items()})
        best, last_step = _fit(cfg, mcfg, module, dm, active.info.run_id, tmp)
        module.load_state_dict(
            torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        )
        metrics = _evaluate(module, dm, cfg) | (extra_metrics or {})
        if mcfg.get("sparsity"):
            metrics |= sparsity_stats(model)
        file = tmp / "model.pt"
        meta = {
            "run_id": active.info.run_id,
            "classes": dm.classes,
            "channels": dm.channels,
            "length": int(dm.recordings.x.shape[2]),
            "min_length": model.arch.min_length(),
            "metrics": metrics,
        }
        file_bytes = save_model(file, model, meta)
        metrics |= size_metrics(
            model, file_bytes, teacher.metrics["size_file_bytes"] if teacher else None
        )
        if cfg.export.onnx:
            metrics |= _export(model, dm, tmp, meta, cfg.export)
            metrics |= _deployed(metrics, cfg.export.deploy)
        meta["metrics"] = metrics
        save_model(file, model, meta)
        if store_as is not None:
            save_model(store_as, model, meta)
        # after every per-epoch point, so the runs table shows these summary values
        mlflow.log_metrics(metrics, step=last_step + 1)
        tracking.log_file(file)
        _log_confusion(module, dm)
        if cfg.logger.log_model:
            _log_mlflow_model(model, dm)
        log.info("%s run %s: %s", kind, active.info.run_id, _summary(metrics))
    return Trained(active.info.run_id, model.eval(), metrics)


def _fit(
    cfg: DictConfig,
    mcfg: DictConfig,
    module: SignClassifier,
    dm: SignDataModule,
    run_id: str,
    tmp: Path,
) -> tuple[str, int]:
    """Train; returns the path of the weights to test and the last step.

    Those weights are the best by val_acc, or with ``restore=last`` the final ones (a fixed
    schedule, ``patience=null``, trusts its full length more than a small validation set).
    """
    restore = mcfg.restore
    checkpoint = ModelCheckpoint(
        dirpath=tmp,
        filename="best",
        monitor="val_acc",
        mode="max",
        save_weights_only=True,
        save_last=restore == "last",
    )
    callbacks: list[Callback] = [
        checkpoint,
        *_early_stopping(mcfg.patience),
        *_trial_pruning(cfg),
        *([SparsityRegularizer(**mcfg.sparsity)] if mcfg.get("sparsity") else []),
    ]
    trainer = L.Trainer(
        **OmegaConf.to_container(cfg.trainer, resolve=True),
        max_epochs=mcfg.max_epochs,
        callbacks=callbacks,
        logger=MLFlowLogger(tracking_uri=cfg.logger.tracking_uri, run_id=run_id),
        default_root_dir=tmp,
    )
    with warnings.catch_warnings():
        # a frozen teacher is in eval mode on purpose (SignClassifier keeps it there)
        warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
        trainer.fit(module, datamodule=dm)
    if trainer.interrupted:
        raise KeyboardInterrupt("training interrupted")
    best = checkpoint.last_model_path if restore == "last" else checkpoint.best_model_path
    return best, trainer.global_step


def _early_stopping(patience: int | None) -> list[Callback]:
    if patience is None:
        return []
    return [EarlyStopping(monitor="val_acc", mode="max", patience=patience)]


def _trial_pruning(cfg: DictConfig) -> list[Callback]:
    """Optuna's Lightning pruning callback when this run is a prunable sweep trial."""
    from hydra_plugins.signdistill_sweeper.job import job_trial

    trial = job_trial(cfg.sweep)
    if trial is None:
        return []
    from optuna_integration import PyTorchLightningPruningCallback

    return [PyTorchLightningPruningCallback(trial, monitor="val_acc")]


def _evaluate(module: SignClassifier, dm: SignDataModule, cfg: DictConfig) -> dict[str, float]:
    """Validation and test metrics of the restored best weights."""
    trainer = L.Trainer(
        **{**OmegaConf.to_container(cfg.trainer, resolve=True), "enable_progress_bar": False},
        logger=False,
    )
    val = trainer.validate(module, datamodule=dm, verbose=False)[0]
    test = trainer.test(module, datamodule=dm, verbose=False)[0]
    return {
        "val_acc": val["val_acc"],
        "val_macro_f1": val["val_macro_f1"],
        "test_acc": test["test_acc"],
        "test_macro_f1": test["test_macro_f1"],
    }


def _export(
    model: ConvPoolLSTM, dm: SignDataModule, tmp: Path, meta: dict, ecfg: DictConfig
) -> dict[str, float]:
    """ONNX (and int8) files as artifacts, with their sizes, accuracy and latency.

    ``*_deployed`` metrics describe the file ``export.deploy`` names, so a sweep can optimize
    what a device would actually run.
    """
    x_test, y_test = dm.tensors("test")
    x_val, y_val = dm.tensors("val")
    onnx_meta = {k: meta[k] for k in ("classes", "channels", "length", "min_length")}
    fp32 = tmp / "model.onnx"
    metrics = {"size_onnx_bytes": float(export.export_onnx(model, fp32, x_test[:2], onnx_meta))}
    metrics |= export.parity(model, fp32, x_test)
    tracking.log_file(fp32)
    if ecfg.int8:
        int8 = tmp / "model.int8.onnx"
        metrics["size_int8_bytes"] = float(export.quantize_int8(fp32, int8))
        metrics["test_acc_int8"] = export.accuracy(int8, x_test.numpy(), y_test.numpy())
        metrics["val_acc_int8"] = export.accuracy(int8, x_val.numpy(), y_val.numpy())
        tracking.log_file(int8)
        if ecfg.latency_runs:
            metrics |= export.latencies(model, fp32, int8, x_test[:1], ecfg.latency_runs)
    return metrics


def _deployed(metrics: dict[str, float], deploy: str) -> dict[str, float]:
    """The size and accuracy of the file a device would run (``export.deploy``)."""
    if deploy == "int8":
        return {
            "size_deployed_bytes": metrics["size_int8_bytes"],
            "val_acc_deployed": metrics["val_acc_int8"],
            "test_acc_deployed": metrics["test_acc_int8"],
        }
    return {
        "size_deployed_bytes": metrics["size_onnx_bytes"],
        "val_acc_deployed": metrics["val_acc"],
        "test_acc_deployed": metrics["test_acc"],
    }


def _log_confusion(module: SignClassifier, dm: SignDataModule) -> None:
    n = len(dm.classes)
    fig, ax = module.test_confusion.plot(labels=dm.classes if n <= 30 else None)
    fig.set_size_inches(max(6, n / 4), max(6, n / 4))
    ax.set_title("test confusion matrix")
    tracking.log_figure(fig, "confusion_matrix.png")


def _log_mlflow_model(model: ConvPoolLSTM, dm: SignDataModule) -> None:
    """The model via MLflow's PyTorch flavor, with an input example (and so a signature)."""
    # two recordings: an example batch of one would make the exported (pt2) model batch-1 only
    example = dm.tensors("val")[0][:2].numpy()
    mlflow.pytorch.log_model(
        model.eval(),
        name="model",
        input_example=example,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "signdistill"],
    )


def _summary(metrics: dict[str, float]) -> str:
    keys = (
        "val_acc",
        "test_acc",
        "test_macro_f1",
        "params",
        "size_file_bytes",
        "compression_ratio",
    )
    return ", ".join(f"{k}={metrics[k]:.4g}" for k in keys)
