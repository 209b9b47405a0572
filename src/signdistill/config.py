"""One validation of the whole composed config, before any data is loaded or any epoch trained.

Every instantiable node (one with ``_target_``) is checked against the signature of the callable it
names: unknown keys are refused, and given values must match the parameters' type annotations
(including the ranges and allowed values that ``pydantic`` types such as ``PositiveInt`` and
``Literal[...]`` state there). Then the cheap, side-effect-free objects (settings, data source and
DataModule, model specs, the distillation loss) are constructed, so their own cross-field checks run
too, and so are the objects whose libraries check their own arguments: the Lightning Trainer (an
accelerator this machine lacks, ``devices=0``) and each recipe's optimizer and learning-rate
schedule (a negative learning rate), built without any data. Checking against the constructors
themselves keeps one source of truth: a schema written beside them (structured configs) would
repeat every parameter and drift from it. ``trainer.*`` keys that a recipe or the run sets itself
(``max_epochs``, ``callbacks``, ``logger``, ...) are refused, naming the key that owns them, and a
local MLflow store must be writable.

Errors are :class:`ConfigError`, whose message starts with the full key and states the rule.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import typing
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from hydra import compose, initialize_config_dir
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from signdistill.checkpoints import load_model
from signdistill.errors import ConfigError, ModelFileError


@dataclasses.dataclass(frozen=True)
class Paths:
    """Where the run's files live: the checkout, prepared datasets, stored teachers."""

    root: str
    cache: str
    teachers: str


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The top level of ``conf/config.yaml``: one node per config group, plus the run's seed."""

    data: Any
    model: Any
    train: Any
    teacher: Any
    distill: Any
    prune: Any
    trainer: Any
    export: Any
    logger: Any
    paths: Paths
    seed: Annotated[int, Field(ge=0)] = 0
    # torch's threads: signdistill.threads
    threads: Annotated[int, Field(ge=1)] | Literal["auto"] | None = "auto"
    recipe: str | None = None  # set by a +recipe=<name> preset (conf/recipe/); names runs


CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def load_config(*overrides: str) -> DictConfig:
    """The project's composed config with ``overrides``, outside a Hydra app (study scripts,
    benchmarks, tests); ``paths.root=<dir>`` roots its files (MLflow, caches, teachers) there."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


# Constructed during validation: no I/O, no training, so their own checks run before any work.
CONSTRUCTED = ("data", "model", "teacher.model", "distill", "export", "prune", "logger")


# Trainer keywords that a recipe or the run itself sets (each fit passes its own), and the key
# that decides what they would: given under trainer.*, they would be silently replaced.
TRAINER_OWNED = {
    "max_epochs": "the recipe sets it: use train.max_epochs (teacher.train.* for the teacher)",
    "min_epochs": "the recipe's floor is in optimizer steps: use train.min_steps",
    "max_steps": "the recipe sets it: use train.max_steps (teacher.train.* for the teacher)",
    "min_steps": "the recipe sets it: use train.min_steps (teacher.train.* for the teacher)",
    "callbacks": "the recipe sets them: use train.callbacks",
    "logger": "every run logs to MLflow: see logger.*",
    "enable_checkpointing": "the run keeps checkpoints to restore the weights train.restore names",
    "default_root_dir": "the run's checkpoints go to a scratch folder of its own",
    "fast_dev_run": "a dev run logs and keeps nothing; shorten the recipe instead "
    "(train.max_epochs=1 train.min_steps=0)",
    "barebones": "a barebones Trainer logs and keeps nothing",
}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first invalid key of ``cfg``."""
    try:
        _check_missing(cfg)
        _check(cfg, RunConfig, "")
    except OmegaConfBaseException as e:  # e.g. an interpolation that does not resolve
        raise ConfigError(f"{e.full_key}: {str(e).splitlines()[0]}") from None
    for path in CONSTRUCTED:
        node = OmegaConf.select(cfg, path)
        if node and "_target_" in node:
            _construct(node, path)
    _check_trainer(cfg.trainer)
    for path in ("train", "teacher.train"):
        _check_optimizer(OmegaConf.select(cfg, path), path)
    if cfg.prune.amount > 0 and cfg.prune.recover == "kd" and not cfg.distill:
        raise ConfigError("prune.recover=kd: needs a distillation loss (distill=kd or dkd)")
    if cfg.teacher.checkpoint:  # a damaged or foreign file is refused before the data is read
        try:
            load_model(Path(cfg.teacher.checkpoint))
        except ModelFileError as e:
            raise ConfigError(f"teacher.checkpoint: {e}") from None
    from signdistill.tracking import check_writable  # imported by the logger node's check

    check_writable(cfg.logger.tracking_uri, cfg.logger.get("artifact_root"))


def _check_missing(cfg: DictConfig) -> None:
    """Refuse mandatory values left unset (``???`` in a config, e.g. ``data.source.root``)."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        others = f" (also unset: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise ConfigError(
            f"{missing[0]}: required, and not set; give it on the command line "
            f"({missing[0]}=...){others}"
        )


def _check_trainer(node: DictConfig) -> None:
    """Refuse the keywords the run sets itself, then build the Trainer once, without data or a
    model, so that Lightning's own checks of the rest (an accelerator this machine lacks,
    ``devices=0``, a precision it does not know) run before any work. The global flags the
    Trainer sets (deterministic algorithms, cuDNN benchmark) are put back: the run's own Trainer
    sets them again."""
    import torch

    from signdistill import console

    for key in node:
        if key in TRAINER_OWNED:
            raise ConfigError(f"trainer.{key}: not a trainer key here; {TRAINER_OWNED[key]}")
    flags = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        with console.quiet_lightning(console.LIGHTNING_DEVICES):
            instantiate(node, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    except Exception as e:  # MisconfigurationException, ValueError, a missing package, ...
        raise ConfigError(_keyed(node, "trainer", e.__cause__ or e)) from None
    finally:
        torch.use_deterministic_algorithms(flags[0], warn_only=warn_only)
        torch.backends.cudnn.benchmark = flags[1]


def _check_optimizer(recipe: DictConfig | None, path: str) -> None:
    """Build a recipe's optimizer on a dummy parameter, and its schedule as the run will (given
    ``T_max``, the epochs), so that torch's own range checks (a negative learning rate, betas
    outside [0, 1)) and a schedule that cannot take the run's arguments are refused before any
    data is read."""
    import torch

    if recipe is None or not recipe.get("optimizer"):
        return
    try:
        optimizer = instantiate(recipe.optimizer)([torch.nn.Parameter(torch.zeros(1))])
    except Exception as e:
        raise ConfigError(_keyed(recipe.optimizer, f"{path}.optimizer", e.__cause__ or e)) from None
    if recipe.get("scheduler"):
        try:
            instantiate(recipe.scheduler)(optimizer, T_max=recipe.max_epochs)
        except Exception as e:
            cause = e.__cause__ or e
            raise ConfigError(_keyed(recipe.scheduler, f"{path}.scheduler", cause)) from None


# How libraries name a keyword in their messages, when not by its name.
_SPELLED = {"lr": "learning rate", "eps": "epsilon", "betas": "beta"}


def _keyed(node: DictConfig, path: str, error: BaseException) -> str:
    """A library's error about ``node`` as ``key=value: message``: the key its message names
    first (by name, or as the library spells it), else the key whose value it quotes, else the
    node itself."""
    text = str(error).strip()
    message = text.splitlines()[0] if text else type(error).__name__
    values = {str(k): _value_text(node, str(k)) for k in node if not str(k).startswith("_")}

    def first(*words: str) -> int | None:
        found = [re.search(rf"(?<![\w.]){re.escape(w)}(?!\w)", message, re.I) for w in words]
        starts = [m.start() for m in found if m]
        return min(starts) if starts else None

    named = {k: at for k in values if (at := first(k, _SPELLED.get(k, k))) is not None}
    quoted = [k for k, v in values.items() if _wordy(v) and first(v) is not None]
    key = min(named, key=named.__getitem__) if named else next(iter(quoted), None)
    if key is None:
        return f"{path}: {message}"
    return f"{path}.{key}={values[key]}: {message}"


def _wordy(value: str) -> bool:
    """A value distinctive enough to tell its key by: a word, not a number or a flag."""
    return bool(re.fullmatch(r"[A-Za-z][\w.-]+", value)) and value not in ("True", "False", "None")


def _value_text(node: DictConfig, key: str) -> str:
    """``node[key]`` as written on a command line; empty if it does not resolve."""
    try:
        return str(_plain(node[key]))
    except OmegaConfBaseException:
        return ""


def _check(node: DictConfig, target: Callable, path: str) -> None:
    """Check ``node``'s own keys against ``target``'s signature, then its instantiable children
    (own keys first: an unknown top-level key is refused before any child's module is imported)."""
    values, children = {}, []
    for key, value in node.items():
        if str(key).startswith("_"):  # Hydra's _target_, _partial_, _recursive_, ...
            continue
        if isinstance(value, DictConfig) and "_target_" in value:
            children.append((value, _join(path, key)))
        elif isinstance(value, DictConfig) and _instantiable_values(value):
            children += [(child, _join(path, key, name)) for name, child in value.items()]
        else:
            values[key] = _plain(value)
    model = _signature_model(target)
    try:
        model.model_validate(values)
    except ValidationError as e:
        raise ConfigError(_message(e, path, list(model.model_fields))) from None
    for child, child_path in children:
        _check(child, _target(child, child_path), child_path)


def _construct(node: DictConfig, path: str) -> None:
    try:
        instantiate(node)
    except Exception as e:  # the constructors' own checks: ValueError, DataError, ...
        cause = e.__cause__ or e  # instantiate wraps the constructor's error
        raise ConfigError(_prefixed(str(cause), path)) from None


def _target(node: DictConfig, path: str) -> Callable:
    try:
        return get_object(node._target_)
    except Exception:
        raise ConfigError(f"{path}._target_={node._target_}: no such class or function") from None


def _instantiable_values(node: DictConfig) -> bool:
    """A named collection of instantiable nodes, such as ``train.callbacks``."""
    children = list(node.values())
    return bool(children) and all(isinstance(c, DictConfig) and "_target_" in c for c in children)


@cache
def _signature_model(target: Callable) -> type[BaseModel]:
    """A pydantic model of ``target``'s keyword parameters (all optional: the pipeline passes
    some at run time, such as the network a LightningModule trains)."""
    signature = inspect.signature(target)
    try:
        hints = typing.get_type_hints(
            target if dataclasses.is_dataclass(target) else _init(target), include_extras=True
        )
    except Exception:  # unresolvable annotations (e.g. a library's): check the keys only
        hints = {}
    fields, extra = {}, "forbid"
    for name, p in signature.parameters.items():
        if p.kind is p.VAR_KEYWORD:
            extra = "allow"
        elif p.kind is not p.VAR_POSITIONAL:
            default = None if p.default is inspect.Parameter.empty else p.default
            fields[name] = (_checkable(hints.get(name, Any)), default)
    config = ConfigDict(extra=extra, arbitrary_types_allowed=True)
    return create_model(f"{getattr(target, '__name__', 'node')}Config", __config__=config, **fields)


def _checkable(annotation: Any) -> Any:
    """``annotation`` if pydantic can check values against it, else Any (e.g. a Protocol, or a
    class such as a network that a config never holds)."""
    try:
        TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
    except Exception:
        return Any
    return annotation


def _init(target: Callable) -> Callable:
    return target.__init__ if inspect.isclass(target) else target


def _plain(value: Any) -> Any:
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _message(error: ValidationError, path: str, known: list[str]) -> str:
    """The first error as ``key=value: rule`` (or ``key: unknown key`` with the known ones)."""
    first = error.errors()[0]
    key = _join(path, *map(str, first["loc"][:1]))
    if first["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(first["loc"][0]), known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"known here: {', '.join(known)}"
        return f"{key}: unknown key ({hint})"
    rule = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        return f"{key}: required"
    return f"{key}={first['input']!r}: {rule.lower() if rule[:1].isupper() else rule}"


def _prefixed(message: str, path: str) -> str:
    """A constructor's message (``field=value: rule``) under the node's full key."""
    return message if message.startswith(f"{path}.") else _join(path, message)


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)
