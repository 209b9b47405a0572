"""One run of the study: train a teacher, or distill a student from one (training it first if no
stored teacher fits the data), or prune and recover the teacher; each model trained is one MLflow
run logging accuracy against size.

:func:`execute` only dispatches on the run's task, chosen and validated by
:func:`signdistill.settings.compose`; :func:`train_job` is the path every model takes: build, fit,
evaluate, measure the deployed files, record.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
import torch
from omegaconf import DictConfig

from signdistill import build, console, export, phases, recover, teachers, tracking
from signdistill import plan as planning
from signdistill.checkpoints import save_model
from signdistill.errors import ConfigError
from signdistill.families import Network
from signdistill.files import scratch_dir
from signdistill.fit import evaluate, fit
from signdistill.jobs import Context, Job, Trained
from signdistill.module import SignClassifier
from signdistill.settings import Settings, compose
from signdistill.sizes import size_metrics
from signdistill.threads import choose as choose_threads

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Compose ``cfg`` into the run's settings and :func:`execute` them."""
    return execute(compose(cfg))


def execute(settings: Settings) -> dict[str, Any]:
    """Train what the settings ask for; returns its summary metrics and ``mlflow_run_id``."""
    threads = choose_threads(settings.threads)
    if threads is not None:
        torch.set_num_threads(threads)
    phases.arm_database_pause()
    phases.reached("data")
    ctx = context(settings)
    if settings.task == "prune":
        result = recover.prune_and_recover(ctx, train_job)
    elif settings.task == "teacher":
        own = teachers.teacher_job(settings.model, settings.train, settings.seed, own=True)
        result = teachers.obtain(ctx, own, train_job, retrain=True)
    else:
        result = train_job(ctx, student_job(ctx))
    return {**result.metrics, "mlflow_run_id": result.run_id}


def context(settings: Settings) -> Context:
    """Prepare the data, check that both architectures fit its recordings, open MLflow."""
    dm = settings.data
    dm.prepare()
    length = dm.recordings.x.shape[2]
    for key, spec in (("model", settings.model), ("teacher.model", settings.teacher.model)):
        shortest = spec.architecture(1, 2).min_length()
        if length < shortest:
            raise ConfigError(
                f"{key}.kernel_size/{key}.pool: recordings of {length} steps are too short "
                f"for this architecture (needs >= {shortest})"
            )
    t = settings.tracking
    experiment = tracking.configure(t.tracking_uri, t.experiment_name, t.artifact_root)
    members = len(settings.teacher.seeds or [settings.seed])
    reference = members * build.parameters(settings.teacher.model, dm)
    return Context(settings, dm, experiment, reference, planning.plan(settings, dm))


def student_job(ctx: Context) -> Job:
    """The run's student: distilled from its teacher, or from hard labels with ``distill=none``
    (then no teacher is needed, and none is trained)."""
    s = ctx.settings
    if s.loss is None:
        kind, teacher, loss = f"{s.model.name}-scratch", None, None
    else:
        learn_from = recover.assistant if s.teacher.assistant else teachers.for_student
        kind, teacher, loss = f"{s.model.name}-kd", learn_from(ctx, train_job), s.loss()
    return Job(
        network=s.model,
        recipe=s.train,
        seed=s.seed,
        role="student",
        kind=kind,
        teacher=teacher,
        loss=loss,
    )


def train_job(ctx: Context, job: Job) -> Trained:
    """Fit ``job``, restore the weights its recipe keeps, test, measure its deployed files, and
    record it all as one MLflow run."""
    s = ctx.settings
    L.seed_everything(job.seed, workers=True)
    module = build.module(job, ctx.dm, s.teacher.cache_logits)
    record = tracking.record(job.kind, _tags(ctx, job, module), s.tracking, job.own, s.recipe)
    with (
        tracking.run(ctx.experiment_id, record.name, record.tags, record.parent_run_id) as active,
        scratch_dir() as tmp,
    ):
        run_id = active.info.run_id
        config = {"seed": job.seed, "model": job.model_config(), "train": job.recipe.values()}
        tracking.log_config(s.config, config)
        mlflow.log_params({f"arch.{k}": v for k, v in module.model.arch.as_dict().items()})
        logger = tracking.RunLogger(run_id=run_id, tracking_uri=s.tracking.tracking_uri)
        fitted = fit(module, ctx.dm, s.trainer, tmp, logger, ctx.plan, job.kind)
        mlflow.log_params(fitted.params())
        phases.reached("evaluate")
        metrics = evaluate(module, ctx.dm, s.trainer) | _teacher_metrics(job) | dict(job.metrics)
        phases.reached("export")
        metrics |= _save_and_measure(ctx, job, module.model, metrics, tmp, run_id)
        # after every per-epoch point, so the runs table shows these summary values
        mlflow.log_metrics(metrics, step=fitted.steps + 1)
        tracking.log_confusion(module.test_confusion, ctx.dm.classes)
        if s.tracking.log_model:
            tracking.log_pytorch_model(module.model, ctx.dm.tensors("val")[0][:2].numpy())
        line = console.summary(
            job.kind, run_id, metrics, s.tracking.tracking_uri, ctx.experiment_id
        )
        warning = export.deploy_warning(metrics, s.export)
        if warning:  # quantization cost more than export.max_deploy_drop: said, and tagged
            mlflow.set_tag("deploy_warning", warning)
            line += f" | WARNING: {warning}"
        log.info(line)
    return Trained(run_id, module.model.eval(), metrics)


def _tags(ctx: Context, job: Job, module: SignClassifier) -> dict[str, str]:
    """What the run is, where its code and data come from, and what it learned from."""
    tags = {
        "role": job.role,
        "task": ctx.settings.task,
        "git_commit": tracking.git_commit(Path(ctx.settings.paths.root)),
        "data": ctx.dm.name,
        "data_fingerprint": ctx.dm.describe()["fingerprint"],
        **job.tags,
    }
    if job.teacher is not None:
        tags["teacher_run_id"] = job.teacher.run_id
    if module.distill_loss is not None:  # cached once on clean data, or run on every batch
        tags["teacher_logits"] = "online" if module.teacher is not None else "cached"
    return tags


def _teacher_metrics(job: Job) -> dict[str, float]:
    """The accuracy of what the student learns from, on this split."""
    if job.teacher is None:
        return {}
    return {f"teacher_{k}": job.teacher.metrics[k] for k in ("val_acc", "test_acc")}


def _save_and_measure(
    ctx: Context, job: Job, model: Network, metrics: dict, folder: Path, run_id: str
) -> dict[str, float]:
    """Write the weights file (and the teacher store's copy), export and measure the deployed
    files; every file becomes an artifact. Returns the size and deployment metrics."""
    dm, settings = ctx.dm, ctx.settings.export
    meta = {
        "run_id": run_id,
        "classes": dm.classes,
        "channels": dm.channels,
        "length": int(dm.recordings.x.shape[2]),
        "min_length": model.arch.min_length(),
        "metrics": metrics,
    }
    file = folder / "model.pt"
    out = size_metrics(model, save_model(file, model, meta), ctx.reference_params)
    onnx_meta = {k: meta[k] for k in ("classes", "channels", "length", "min_length")}
    # calibration (static int8) sees the training recordings only; accuracy val and test
    splits = export.Splits(*(export.Split(*dm.tensors(p)) for p in ("train", "val", "test")))
    measured, files = export.measure(model, splits, folder, onnx_meta, settings)
    if measured:
        out |= measured | export.deployed(metrics | measured, settings)
    meta["metrics"] = metrics | out
    save_model(file, model, meta)
    if job.store_as is not None:
        save_model(job.store_as, model, meta)
    for path in (*files, file):
        tracking.log_file(path)
    return out
