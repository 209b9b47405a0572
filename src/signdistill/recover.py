"""Pruning and recovery: sparsity-train the teacher, prune it, recover the smaller model.

The sparse base model is the configured teacher with a BatchNorm after each conv, trained with the
sparsity callback (``prune.sparsity``), and stored like any teacher. Recovery is KD from that
unpruned model (``prune.recover=kd``, the source study's method, with the ``distill`` loss) or
hard labels only (``finetune``), for ``prune.recover_epochs`` epochs of the run's ``train`` recipe;
its run is tagged ``pruned_from`` the base model's run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from hydra.utils import instantiate
from pydantic import Field, NonNegativeFloat, PositiveInt

from signdistill import pruning, teachers
from signdistill.config import with_values
from signdistill.fit import accuracy
from signdistill.jobs import Context, Job, Trained, TrainJob
from signdistill.sparsity import below_threshold

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneSettings:
    """How a teacher is pruned and recovered (``conf/prune/``); ``amount=0`` turns it off.

    ``amount``: the fraction of prunable units removed; ``scope``: per layer or global; ``floor``:
    the fewest units a layer keeps (a count, or a fraction of the layer if < 1).
    """

    amount: Annotated[float, Field(ge=0, lt=1)] = 0.0
    scope: Literal["layer", "global"] = "layer"
    floor: NonNegativeFloat = 1
    recover: Literal["kd", "finetune"] = "kd"
    recover_epochs: PositiveInt = 60
    sparsity: Mapping[str, Any] | None = None


def prune_and_recover(ctx: Context, train_job: TrainJob) -> Trained:
    """The pruned and recovered teacher (the sparse base model is trained first if missing)."""
    cfg = ctx.cfg
    p: PruneSettings = instantiate(cfg.prune)
    base = teachers.obtain(ctx, sparse_base_job(ctx), train_job)
    smaller = pruning.prune(base.model, p.amount, p.scope, p.floor)
    log.info("pruned %s -> %s", base.model.arch, smaller.arch)
    test = ctx.dm.tensors("test")
    below = below_threshold(base.model)
    at_threshold = pruning.prune_to(base.model, pruning.keep_above(below))
    distilled = p.recover == "kd"
    job = Job(
        model=cfg.model,
        train=with_values(cfg.train, {"max_epochs": p.recover_epochs}),
        seed=cfg.seed,
        kind=f"pruned-{p.recover}",
        teacher=base if distilled else None,
        loss=instantiate(cfg.distill) if distilled else None,
        init=smaller,
        tags={"pruned_from": base.run_id},
        metrics={
            "test_acc_before_recovery": accuracy(smaller, *test),
            # the sparse model itself, and pruned of exactly its units below threshold
            "sparse_test_acc": base.metrics["test_acc"],
            "sparse_below_threshold": float(torch.cat(list(below.values())).float().mean()),
            "test_acc_pruned_below_threshold": accuracy(at_threshold, *test),
        },
    )
    return train_job(ctx, job)


def sparse_base_job(ctx: Context) -> Job:
    """The configured teacher with conv BatchNorms, trained with the sparsity callback (with
    ``prune.sparsity=null``, without: the ablation without sparsity training)."""
    teacher, sparsity = ctx.cfg.teacher, ctx.cfg.prune.sparsity
    callbacks = {"callbacks": {"sparsity": sparsity}} if sparsity else {}
    return Job(
        model=with_values(teacher.model, {"conv_batchnorm": True}),
        train=with_values(teacher.train, callbacks),
        seed=ctx.cfg.seed,
        kind="teacher",
        own=False,
    )
