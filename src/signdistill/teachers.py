"""Obtaining a teacher: the store of trained teachers, ensembles, and given teacher files.

Teachers live between runs in one file per (data, split, teacher config, seed). A student run looks
its teacher up by key; the lock makes concurrent workers train a missing teacher once and the others
wait and load it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from torch import nn

from signdistill.checkpoints import load_model
from signdistill.errors import DataError, ModelFileError
from signdistill.families import Spec
from signdistill.files import cache_key
from signdistill.fit import accuracy
from signdistill.jobs import Context, Job, Trained, TrainJob
from signdistill.settings import Recipe, TeacherSettings

log = logging.getLogger(__name__)

TEACHER_FILE = "teacher.pt"


def teacher_key(model: Spec, train: Recipe, data: Mapping[str, Any], seed: int) -> str:
    """What determines a teacher: what it is, how it is trained, the data and split, the seed."""
    config = {"model": dataclasses.asdict(model), "train": train.values()}
    return cache_key({"teacher": config, "data": dict(data), "seed": seed})


def obtain(
    ctx: Context, job: Job, train_job: TrainJob, retrain: bool = False, key: str | None = None
) -> Trained:
    """The stored teacher ``job`` describes, trained (once) if missing; ``retrain`` (an explicit
    ``model=teacher`` run) trains and replaces it even when stored. ``key``: where it is stored,
    for a job that starts from a given network (a pruned teacher); by default its spec's key."""
    key = key or teacher_key(job.network, job.recipe, ctx.dm.describe(), job.seed)
    store = Path(ctx.settings.paths.teachers)
    path = store / key / TEACHER_FILE
    store.mkdir(parents=True, exist_ok=True)
    with FileLock(str(store / f"{key}.lock")):
        if path.exists() and not retrain:
            log.info("Using the stored teacher %s", path)
            return stored_teacher(path, ctx)
        if not retrain:
            log.warning(
                "No teacher fits this data, split and teacher config yet: training one first "
                "(its own MLflow run), stored as %s",
                path,
            )
        return train_job(ctx, dataclasses.replace(job, store_as=path))


def for_student(ctx: Context, train_job: TrainJob) -> Trained:
    """What a student learns from: ``teacher.checkpoint``, the stored teacher of the run's seed,
    or with ``teacher.seeds`` the ensemble of those seeds' teachers (each trained if missing).

    An ensemble's metrics are its own accuracy on this split and the members' total size.
    """
    settings = ctx.settings.teacher
    if settings.checkpoint:
        return load_teacher(Path(settings.checkpoint), ctx, "teacher.checkpoint")
    seeds = settings.seeds or [ctx.settings.seed]
    members = [obtain(ctx, side_job(settings, seed), train_job) for seed in seeds]
    if not settings.seeds:
        return members[0]
    ensemble = TeacherEnsemble([m.model for m in members]).eval()
    metrics = {f"{part}_acc": accuracy(ensemble, *ctx.dm.tensors(part)) for part in ("val", "test")}
    return Trained(",".join(m.run_id for m in members), ensemble, metrics)


def teacher_job(model: Spec, recipe: Recipe, seed: int, own: bool) -> Job:
    """Training a teacher: the run's own model (``model=teacher``), or the configured teacher
    trained on the side for a student (its own top-level run); stored either way."""
    return Job(network=model, recipe=recipe, seed=seed, role="teacher", kind=model.name, own=own)


def side_job(settings: TeacherSettings, seed: int) -> Job:
    """Training the configured teacher for a student: its own top-level run, stored."""
    return teacher_job(settings.model, settings.train, seed, own=False)


def stored_teacher(path: Path, ctx: Context) -> Trained:
    """A teacher from the store; a damaged one is reported with what to do about it."""
    try:
        return load_teacher(path, ctx, "stored teacher")
    except ModelFileError as e:
        raise ModelFileError(
            f"{e}. Delete its folder to train it again: rm -r {path.parent}"
        ) from None


def load_teacher(path: Path, ctx: Context, where: str) -> Trained:
    """A teacher file, refused unless it was trained on this data's classes and channels."""
    try:
        model, meta = load_model(path)
    except ModelFileError as e:
        raise ModelFileError(f"{where}: {e}") from None
    check_fits(meta, ctx.dm.classes, ctx.dm.channels, f"{where}={path}")
    return Trained(meta["run_id"], model, meta["metrics"])


def check_fits(
    meta: Mapping[str, Any], classes: list[str], channels: list[str], where: str
) -> None:
    """Refuse a teacher trained on other classes or channels than the current data."""
    for name, have, want in (
        ("classes", meta.get("classes"), classes),
        ("channels", meta.get("channels"), channels),
    ):
        if list(have or []) != list(want):
            raise DataError(
                f"{where}: teacher {name} do not match the data "
                f"(teacher has {len(have or [])}: {json.dumps((have or [])[:5])}..., "
                f"data has {len(want)}: {json.dumps(want[:5])}...)"
            )


class TeacherEnsemble(nn.Module):
    """Several teachers as one: the mean of the members' logits (each standardizes its input)."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)
