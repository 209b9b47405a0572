"""Building what a job trains: the network, the distiller and the LightningModule."""

from __future__ import annotations

from torch import nn

from signdistill.data.datamodule import SignDataModule
from signdistill.distill import Distiller, teacher_logits
from signdistill.families import Network, Spec, build_network
from signdistill.jobs import Job
from signdistill.models import count_parameters
from signdistill.module import SignClassifier


def network(spec: Spec, dm: SignDataModule) -> Network:
    """A fresh network of ``spec``'s family and sizes for this data, standardizing with its
    training stats."""
    model = build_network(spec.architecture(len(dm.channels), len(dm.classes)))
    model.normalize.fit(*dm.channel_stats())
    return model


def parameters(spec: Spec, dm: SignDataModule) -> int:
    """How many parameters a network of ``spec`` has on this data (nothing is trained)."""
    return count_parameters(build_network(spec.architecture(len(dm.channels), len(dm.classes))))


def module(job: Job, dm: SignDataModule, cache_logits: bool) -> SignClassifier:
    """The LightningModule of the job's recipe around its network (built from its spec, or the
    network it was given), distilling if the job has a loss.

    A distilled student on clean data gets its teacher's logits computed once and served by the
    DataModule (unless ``cache_logits`` is off); with augmentation the teacher runs online on the
    student's augmented batch.
    """
    given = job.network
    model = given.train() if isinstance(given, nn.Module) else network(given, dm)
    augment = job.recipe.augment()
    distiller = None
    if job.loss is not None and job.teacher is not None:
        online = (augment is not None and augment.enabled) or not cache_logits
        distiller = Distiller(job.teacher.model, job.loss, online)
    cached = distiller is not None and not distiller.online
    dm.set_teacher_logits(
        teacher_logits(distiller.teacher, dm.tensors("train")[0]) if cached else None
    )
    return job.recipe.module(model, augment, distiller)
