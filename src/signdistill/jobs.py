"""What the pipeline's stages hand each other: the run's context, a job to train, its result."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torch import nn

from signdistill.console import Plan
from signdistill.data.datamodule import SignDataModule
from signdistill.families import Network, Spec
from signdistill.settings import Recipe, Settings


@dataclass(frozen=True)
class Context:
    """What every stage of one run shares: its settings, the prepared data, the MLflow experiment.

    ``reference_params``: the configured teacher's parameter count (times the ensemble's
    members), computed from its architecture: the denominator of every ``compression_ratio``.
    ``plan``: the models the run will train, for the progress bar's time left (none: each
    model's own time only).
    """

    settings: Settings
    dm: SignDataModule
    experiment_id: str
    reference_params: int
    plan: Plan | None = None


@dataclass(frozen=True)
class Trained:
    """A finished run: its MLflow id, the model with its tested weights, its summary metrics."""

    run_id: str
    model: nn.Module
    metrics: dict[str, float]


Role = Literal["teacher", "student", "pruned"]
"""What a trained model is in the study, tagged ``role`` on its run: a teacher, a student (built
from a student spec), or the teacher pruned and recovered."""


@dataclass(frozen=True)
class Job:
    """One model to train and record as one MLflow run.

    ``network``: a spec to build a fresh network from (for this data), or a network to start from
    (a pruned model); the run's ``role`` tag, logged model config and sizes describe exactly that.
    ``recipe``: how it is trained. ``kind``: the run's default name and ``kind`` tag (``teacher``,
    ``student_tiny-kd``, ``pruned-finetune``, ...). ``own``: the model the run was asked for,
    recorded with the driver's run name, parent and tags; a teacher trained on the side is not.
    With a ``teacher`` and a ``loss`` it is distilled; ``store_as`` also writes its weights file
    there (the teacher store).
    """

    network: Spec | Network
    recipe: Recipe
    seed: int
    role: Role
    kind: str
    own: bool = True
    teacher: Trained | None = None
    loss: nn.Module | None = None
    store_as: Path | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)

    def model_config(self) -> dict[str, Any]:
        """What the network is, as logged under the run's ``model.*`` params: the spec it is built
        from, or for a given network its architecture."""
        if isinstance(self.network, nn.Module):
            return {"role": self.role, **self.network.arch.as_dict()}
        return dataclasses.asdict(self.network)


TrainJob = Callable[[Context, Job], Trained]
"""Trains a job as one MLflow run (:func:`signdistill.pipeline.train_job`), handed to the stages
that need to train something (a missing teacher, a sparse base model)."""
