"""Checks that reject a bad config before any data is loaded or any epoch is trained."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig


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
        _check(cfg, f"{node}.patience", lambda v: v >= 1, "must be >= 1")
    _check(cfg, "model.role", lambda v: v in ("teacher", "student"), "must be teacher or student")
    _check(cfg, "distill.temperature", lambda v: v > 0, "must be > 0")
    _check(
        cfg, "distill.alpha", lambda v: 0 <= v <= 1, "must be in [0, 1] (weight of the soft term)"
    )
    _check(cfg, "data.batch_size", lambda v: v >= 1, "must be >= 1")
    _check(
        cfg, "prune.amount", lambda v: 0 <= v < 1, "must be in [0, 1) (fraction of units removed)"
    )
    _check(cfg, "export.deploy", lambda v: v in ("fp32", "int8"), "must be fp32 or int8")
    if cfg.export.deploy == "int8" and not (cfg.export.onnx and cfg.export.int8):
        raise ConfigError("export.deploy=int8 needs export.onnx=true and export.int8=true")
