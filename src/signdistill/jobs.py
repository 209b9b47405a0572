"""What the pipeline's stages hand each other: the run's context, a job to train, its result."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig
from torch import nn

from signdistill.data.datamodule import SignDataModule
from signdistill.models import ConvPoolLSTM


@dataclass(frozen=True)
class Context:
    """What every stage of one run shares.

    ``reference_params``: the configured teacher's parameter count (times the ensemble's
    members), computed from its architecture: the denominator of every ``compression_ratio``.
    """

    cfg: DictConfig
    dm: SignDataModule
    experiment_id: str
    reference_params: int


@dataclass(frozen=True)
class Trained:
    """A finished run: its MLflow id, the model with its tested weights, its summary metrics."""

    run_id: str
    model: nn.Module
    metrics: dict[str, float]


@dataclass(frozen=True)
class Job:
    """One model to train and record as one MLflow run.

    ``model`` and ``train`` are the ``conf/model`` and ``conf/train`` nodes (what it is, how it is
    trained). ``own``: the model the run was asked for, recorded with the driver's run name,
    parent and tags; a teacher trained on the side is not. With a ``teacher`` and a ``loss`` it is
    distilled; ``init`` starts it from given weights (a pruned model) instead of a fresh network;
    ``store_as`` also writes its weights file there (the teacher store).
    """

    model: DictConfig
    train: DictConfig
    seed: int
    kind: str
    own: bool = True
    teacher: Trained | None = None
    loss: nn.Module | None = None
    init: ConvPoolLSTM | None = None
    store_as: Path | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)


TrainJob = Callable[[Context, Job], Trained]
"""Trains a job as one MLflow run (:func:`signdistill.pipeline.train_job`), handed to the stages
that need to train something (a missing teacher, a sparse base model)."""
