"""Checks that reject a bad config before any data is loaded or any epoch is trained."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig

from signdistill.distill import LOSSES


class ConfigError(ValueError):
    """An invalid config value; the message starts with the offending key."""


def _check(cfg: DictConfig, key: str, ok: Callable[[float], bool], rule: str) -> None:
    value = cfg
    for part in key.split("."):
        value = value[part]
    if not ok(value):
        raise ConfigError(f"{key}={value}: {rule}")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first invalid key of ``cfg``."""
    for node in ("model", "teacher"):
        _check(cfg, f"{node}.width", lambda v: v > 0, "must be > 0")
        for size in ("conv1", "conv2", "hidden", "lstm_layers", "kernel_size", "pool"):
            _check(
                cfg, f"{node}.{size}", lambda v: int(v) == v and v >= 1, "must be an integer >= 1"
            )
        _check(cfg, f"{node}.dropout", lambda v: 0 <= v < 1, "must be in [0, 1)")
        _check(cfg, f"{node}.max_epochs", lambda v: v >= 1, "must be >= 1")
        _check(cfg, f"{node}.patience", lambda v: v is None or v >= 1, "must be null or >= 1")
        _check(cfg, f"{node}.restore", lambda v: v in ("best", "last"), "must be best or last")
        for name in ("time_shift", "time_scale", "gain", "mixup"):
            _check(cfg, f"{node}.augment.{name}", lambda v: v >= 0, "must be >= 0")
    _check(cfg, "model.role", lambda v: v in ("teacher", "student"), "must be teacher or student")
    _check(cfg, "distill.temperature", lambda v: v > 0, "must be > 0")
    _check(
        cfg, "distill.alpha", lambda v: 0 <= v <= 1, "must be in [0, 1] (weight of the soft term)"
    )
    _check(cfg, "distill.loss", lambda v: v in LOSSES, f"must be one of {', '.join(LOSSES)}")
    _check(cfg, "distill.beta", lambda v: v >= 0, "must be >= 0")
    _check(
        cfg,
        "distill.teacher_seeds",
        lambda v: v is None or (len(v) >= 1 and all(int(s) == s for s in v)),
        "must be null or a non-empty list of integer seeds",
    )
    _check(cfg, "data.batch_size", lambda v: v >= 1, "must be >= 1")
    _check(
        cfg, "prune.amount", lambda v: 0 <= v < 1, "must be in [0, 1) (fraction of units removed)"
    )
    _check(cfg, "export.deploy", lambda v: v in ("fp32", "int8"), "must be fp32 or int8")
    if cfg.export.deploy == "int8" and not (cfg.export.onnx and cfg.export.int8):
        raise ConfigError("export.deploy=int8 needs export.onnx=true and export.int8=true")
