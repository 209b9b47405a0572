"""The composition root: the validated config turned, once, into the typed settings of a run.

:func:`compose` validates the whole config (:func:`signdistill.config.validate`), then builds each
group with Hydra's ``instantiate``: the DataModule (not yet loaded), the model specs, the recipes,
the teacher, pruning, export and tracking settings, the KD loss factory and the Lightning Trainer
factory. The stages receive the resulting :class:`Settings` and never read the raw config; the
resolved config itself is kept only to be logged with every run.

It also chooses the run's :data:`Task` explicitly (teacher, student, or prune-and-recover) and
refuses the combinations that would train one thing and record another.

The settings types of the teacher and pruning stages live here, not in their stage modules, so
that every stage can import this module without a cycle.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt
from torch import nn

from signdistill.augment import Augment
from signdistill.config import CONF_DIR, Paths, validate
from signdistill.data.datamodule import SignDataModule
from signdistill.distill import Distiller
from signdistill.errors import ConfigError
from signdistill.export import ExportSettings
from signdistill.families import Spec
from signdistill.models import ModelSpec
from signdistill.module import SignClassifier
from signdistill.threads import Threads
from signdistill.tracking import TrackingSettings

Task = Literal["teacher", "student", "prune"]
"""What a run trains: the teacher (stored for students), a student (distilled, or from labels with
``distill=none``), or the teacher sparsity-trained, pruned and recovered (``prune.amount > 0``)."""


@dataclass(frozen=True)
class Recipe:
    """How a model is trained: a ``conf/train`` node, whose ``_target_`` is the LightningModule.

    Kept as config, not as a module: the module is built around each network, and the node's
    resolved values are the recipe's identity (teacher keys, logged params). Detached from the
    whole config, so a derived recipe (:meth:`with_values`) re-resolves its own interpolations.
    """

    node: DictConfig

    @classmethod
    def of(cls, node: DictConfig) -> Recipe:
        return cls(OmegaConf.create(OmegaConf.to_container(node)))

    def with_values(self, values: Mapping[str, Any]) -> Recipe:
        """This recipe with ``values`` merged in, new keys allowed (e.g. a callback)."""
        return Recipe(OmegaConf.merge(self.node, values))

    def shortened(self, epochs: int) -> Recipe:
        """This recipe cut to ``epochs``, its bounds in optimizer steps cut in proportion (a
        recovery of 60 epochs of a 300-epoch recipe is a fifth of its steps on any data)."""
        fraction = epochs / self.node.max_epochs
        bounds = {
            key: None if self.node.get(key) is None else math.ceil(fraction * self.node[key])
            for key in ("min_steps", "max_steps")
        }
        return self.with_values({"max_epochs": epochs, **bounds})

    def values(self) -> dict[str, Any]:
        """The resolved recipe: what is logged, and part of what keys a stored teacher."""
        return OmegaConf.to_container(self.node, resolve=True)

    def augment(self) -> Augment | None:
        return instantiate(self.node.augment)

    def module(
        self, model: nn.Module, augment: Augment | None, distiller: Distiller | None
    ) -> SignClassifier:
        """The LightningModule of this recipe around ``model``."""
        # _convert_: the recipe's callbacks arrive as a plain dict of Lightning callbacks
        return instantiate(
            self.node, model=model, augment=augment, distiller=distiller, _convert_="partial"
        )


@dataclass(frozen=True)
class PruneSettings:
    """How the teacher is pruned and recovered (``conf/prune/``); ``amount=0`` turns it off.

    ``amount``: the fraction of prunable units removed; ``scope``: per layer or global; ``floor``:
    the fewest units a layer keeps (a count, or a fraction of the layer if < 1); ``sparsity``: the
    config of the sparse base model's training callback (None: no sparsity training).
    """

    amount: Annotated[float, Field(ge=0, lt=1)] = 0.0
    scope: Literal["layer", "global"] = "layer"
    floor: NonNegativeFloat = 1
    recover: Literal["kd", "finetune"] = "kd"
    recover_epochs: PositiveInt = 60
    sparsity: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class TeacherSettings:
    """The teacher a student learns from (the ``teacher`` node): ``model`` and ``train`` are what
    it is and how it is trained (built from their ``conf/model`` and ``conf/train`` nodes by
    :func:`compose`); ``seeds`` makes it an ensemble of those seeds' teachers; ``checkpoint`` uses
    a given teacher file instead of the store; ``prune`` with an amount > 0 makes it a teacher's
    assistant: that teacher pruned and recovered (``prune@teacher.prune=slim``); ``cache_logits``
    computes its logits once per run when the student trains on clean data."""

    model: Any
    train: Any
    seeds: Annotated[list[NonNegativeInt], Field(min_length=1)] | None = None
    checkpoint: str | None = None
    prune: Any = None
    cache_logits: bool = True

    @property
    def assistant(self) -> bool:
        """Whether the student learns from the pruned teacher instead of the teacher."""
        return self.prune is not None and self.prune.amount > 0


@dataclass(frozen=True)
class Settings:
    """Everything one run needs, built from its config once (:func:`compose`).

    ``loss``: a factory of the KD loss (``conf/distill``), None for ``distill=none``;
    ``trainer``: ``lightning.Trainer`` with ``conf/trainer``'s keywords, the rest given per fit;
    ``threads``: torch's intra-op threads for the run (``auto``: the free cores, None: torch's
    default, one per core; :mod:`signdistill.threads`);
    ``config``: the whole resolved config, logged with every run and read by nothing else.
    """

    task: Task
    data: SignDataModule
    model: Spec
    train: Recipe
    teacher: TeacherSettings
    loss: Callable[[], nn.Module] | None
    prune: PruneSettings
    export: ExportSettings
    tracking: TrackingSettings
    trainer: Callable[..., L.Trainer]
    seed: int
    threads: Threads
    recipe: str | None
    paths: Paths
    config: Mapping[str, Any]


def compose(cfg: DictConfig) -> Settings:
    """Validate ``cfg`` and build the run's :class:`Settings`; raises ConfigError naming the key."""
    validate(cfg)
    model: Spec = instantiate(cfg.model)
    prune: PruneSettings = instantiate(cfg.prune)  # its sparsity callback stays a config
    teacher = _teacher(cfg.teacher)
    return Settings(
        task=choose_task(model, prune, teacher.model),
        data=instantiate(cfg.data),
        model=model,
        train=Recipe.of(cfg.train),
        teacher=teacher,
        loss=instantiate(cfg.distill, _partial_=True) if cfg.distill else None,
        prune=prune,
        export=instantiate(cfg.export),
        tracking=instantiate(cfg.logger),
        trainer=instantiate(cfg.trainer, _partial_=True),
        seed=cfg.seed,
        threads=cfg.threads,
        recipe=cfg.recipe,
        paths=Paths(**cfg.paths),
        config=OmegaConf.to_container(cfg, resolve=True),
    )


def choose_task(model: Spec, prune: PruneSettings, teacher: Spec) -> Task:
    """The run's task: pruning when ``prune.amount > 0``, else the model's role.

    Pruning starts from the configured teacher (``teacher.model``, sparsity-trained): a run that
    asks to prune any other model (``model.*`` set to sizes that ``teacher.model`` does not have)
    is refused before any work, so that no run records a model it did not train. Sizes set on
    ``teacher.model`` alone are the pruned model's.
    """
    if prune.amount == 0:
        return model.role
    if not isinstance(teacher, ModelSpec):
        raise ConfigError(
            f"prune.amount={prune.amount}: channel pruning applies to the Conv-LSTM family; "
            f"teacher.model={teacher.name} is not one (prune=none)"
        )
    if model.role != "teacher":
        raise ConfigError(
            f"prune.amount={prune.amount}: pruning applies to the teacher (model=teacher "
            f"prune=slim); model={model.name} is a {model.role}, which is not pruned. Use "
            "prune=none for a student, or model=teacher to prune the teacher"
        )
    # The size set on model.* (not on teacher.model.*): its value differs from the teacher's file
    chosen = instantiate(OmegaConf.load(CONF_DIR / "model" / "teacher.yaml"))
    for key, value in dataclasses.asdict(model).items():
        if value != getattr(teacher, key) and value != getattr(chosen, key):
            raise ConfigError(
                f"model.{key}={value}: a pruned run prunes teacher.model (teacher.model.{key}="
                f"{getattr(teacher, key)}); set the size on teacher.model instead"
            )
    return "prune"


def _teacher(node: DictConfig) -> TeacherSettings:
    """The teacher a student learns from, its model spec and recipe built."""
    settings = TeacherSettings(
        model=instantiate(node.model),
        train=Recipe.of(node.train),
        seeds=None if node.seeds is None else list(node.seeds),
        checkpoint=node.checkpoint,
        prune=instantiate(node.prune) if node.get("prune") else None,
        cache_logits=node.cache_logits,
    )
    if settings.assistant and not isinstance(settings.model, ModelSpec):
        raise ConfigError(
            f"teacher.prune.amount={settings.prune.amount}: a pruned teacher's assistant needs a "
            f"Conv-LSTM teacher; teacher.model={settings.model.name} is not one"
        )
    return settings
