"""Pruning and recovery: sparsity-train the teacher, prune it, recover the smaller model.

The sparse base model is the configured teacher with a BatchNorm after each conv, trained with the
sparsity callback (``prune.sparsity``), and stored like any teacher. Recovery is KD from that
unpruned model (``prune.recover=kd``, the source study's method, with the ``distill`` loss) or
hard labels only (``finetune``), for ``prune.recover_epochs`` epochs of the run's ``train`` recipe
(its step bounds shortened in proportion);
its run is tagged ``pruned_from`` the base model's run.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from torch import nn

from signdistill import pruning, teachers
from signdistill.distill import KDLoss
from signdistill.files import cache_key
from signdistill.fit import accuracy
from signdistill.jobs import Context, Job, Trained, TrainJob
from signdistill.models import ConvPoolLSTM
from signdistill.settings import PruneSettings, Recipe, Settings
from signdistill.sparsity import below_threshold

log = logging.getLogger(__name__)


def prune_and_recover(ctx: Context, train_job: TrainJob) -> Trained:
    """The run's own model: the teacher pruned and recovered (``prune``), the sparse base model
    trained first if missing."""
    s = ctx.settings
    base = teachers.obtain(ctx, sparse_base_job(s, s.prune), train_job)
    loss = s.loss() if s.loss else None
    return train_job(ctx, recovery_job(ctx, base, s.prune, s.train, loss))


def assistant(ctx: Context, train_job: TrainJob) -> Trained:
    """A teacher's assistant (Mirzadeh et al., 2020) for the run's student: the configured teacher
    pruned and recovered as ``teacher.prune`` says, trained once per data, split and settings and
    stored like any teacher, so that distillation goes teacher -> pruned teacher -> student.
    Its recovery distills from its sparse base model with the standard KD loss (``KDLoss()``'s
    defaults), whatever the student's ``distill``, so its stored copy serves every student."""
    s = ctx.settings
    p = s.teacher.prune
    base_job = sparse_base_job(s, p)
    base = teachers.obtain(ctx, base_job, train_job)
    job = recovery_job(ctx, base, p, s.teacher.train, KDLoss() if p.recover == "kd" else None)
    base_key = teachers.teacher_key(base_job.network, base_job.recipe, ctx.dm.describe(), s.seed)
    key = cache_key({"pruned": base_key, "prune": dataclasses.asdict(p)})
    return teachers.obtain(ctx, dataclasses.replace(job, own=False), train_job, key=key)


def recovery_job(
    ctx: Context, base: Trained, p: PruneSettings, recipe: Recipe, loss: nn.Module | None
) -> Job:
    """``base`` pruned by ``p`` and recovered for ``p.recover_epochs`` of ``recipe``: by KD from
    ``base`` with ``loss`` (``p.recover=kd``) or from the labels alone."""
    smaller = pruning.prune(base.model, p.amount, p.scope, p.floor)
    log.info("pruned %s -> %s", base.model.arch, smaller.arch)
    distilled = p.recover == "kd"
    return Job(
        network=smaller,
        recipe=recipe.shortened(p.recover_epochs),
        seed=ctx.settings.seed,
        role="pruned",
        kind=f"pruned-{p.recover}",
        teacher=base if distilled else None,
        loss=loss if distilled else None,
        tags={"pruned_from": base.run_id},
        metrics=pruning_metrics(base, smaller, ctx.dm.tensors("test")),
    )


def pruning_metrics(
    base: Trained, smaller: ConvPoolLSTM, test: tuple[torch.Tensor, torch.Tensor]
) -> dict[str, float]:
    """What pruning did before recovery, on the test recordings: the pruned model's accuracy, the
    sparse model's, the fraction of its units below threshold, and its accuracy when pruned of
    exactly those units (equal to the sparse model's when they are exactly zero)."""
    below = below_threshold(base.model)
    at_threshold = pruning.prune_to(base.model, pruning.keep_above(below))
    return {
        "test_acc_before_recovery": accuracy(smaller, *test),
        "sparse_test_acc": base.metrics["test_acc"],
        "sparse_below_threshold": float(torch.cat(list(below.values())).float().mean()),
        "test_acc_pruned_below_threshold": accuracy(at_threshold, *test),
    }


def sparse_base_job(s: Settings, p: PruneSettings) -> Job:
    """The configured teacher with conv BatchNorms, trained with ``p``'s sparsity callback (with
    ``sparsity=null``, without: the ablation without sparsity training)."""
    sparsity = p.sparsity
    callbacks = {"callbacks": {"sparsity": sparsity}} if sparsity else {}
    return teachers.teacher_job(
        dataclasses.replace(s.teacher.model, conv_batchnorm=True),
        s.teacher.train.with_values(callbacks),
        s.seed,
        own=False,
    )
