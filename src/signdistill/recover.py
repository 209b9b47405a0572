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

from signdistill import pruning, teachers
from signdistill.fit import accuracy
from signdistill.jobs import Context, Job, Trained, TrainJob
from signdistill.models import ConvPoolLSTM
from signdistill.settings import Settings
from signdistill.sparsity import below_threshold

log = logging.getLogger(__name__)


def prune_and_recover(ctx: Context, train_job: TrainJob) -> Trained:
    """The pruned and recovered teacher (the sparse base model is trained first if missing)."""
    s = ctx.settings
    p = s.prune
    base = teachers.obtain(ctx, sparse_base_job(s), train_job)
    smaller = pruning.prune(base.model, p.amount, p.scope, p.floor)
    log.info("pruned %s -> %s", base.model.arch, smaller.arch)
    distilled = p.recover == "kd"
    job = Job(
        network=smaller,
        recipe=s.train.shortened(p.recover_epochs),
        seed=s.seed,
        role="pruned",
        kind=f"pruned-{p.recover}",
        teacher=base if distilled else None,
        loss=s.loss() if distilled and s.loss else None,
        tags={"pruned_from": base.run_id},
        metrics=pruning_metrics(base, smaller, ctx.dm.tensors("test")),
    )
    return train_job(ctx, job)


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


def sparse_base_job(s: Settings) -> Job:
    """The configured teacher with conv BatchNorms, trained with the sparsity callback (with
    ``prune.sparsity=null``, without: the ablation without sparsity training)."""
    sparsity = s.prune.sparsity
    callbacks = {"callbacks": {"sparsity": sparsity}} if sparsity else {}
    return teachers.teacher_job(
        dataclasses.replace(s.teacher.model, conv_batchnorm=True),
        s.teacher.train.with_values(callbacks),
        s.seed,
        own=False,
    )
