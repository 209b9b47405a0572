"""Hydra's override grammar -> Optuna distributions (interval, range, choice, tag)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override.

    ``int(range(a, b, s))`` follows Python and Hydra: b is excluded. ``tag(log, interval(a, b))``
    samples on a log scale; integers on both ends give an integer distribution.
    """
    value = override.value()
    if override.is_choice_sweep():
        assert isinstance(value, ChoiceSweep)
        return CategoricalDistribution(
            list(override.sweep_iterator(transformer=Transformer.encode))
        )
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        if value.shuffle:
            return CategoricalDistribution(
                list(override.sweep_iterator(transformer=Transformer.encode))
            )
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            last = value.stop - value.step
            return FloatDistribution(value.start, last, step=value.step)
        return IntDistribution(int(value.start), int(value.stop - value.step), step=int(value.step))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(value.start, value.end, log=log)
    raise ValueError(f"{override.input_line}: not a sweep override Optuna can sample")


def search_space(
    params: dict[str, str], arguments: list[str]
) -> tuple[dict[str, BaseDistribution], list[str]]:
    """Distributions for every sweep override (config ``params`` and the command line), and the
    command line's fixed overrides, which every trial receives unchanged."""
    parser = OverridesParser.create()
    lines = [f"{key}={value}" for key, value in params.items()]
    space: dict[str, BaseDistribution] = {}
    fixed: list[str] = []
    for override in parser.parse_overrides(lines + list(arguments)):
        if override.is_sweep_override():
            space[override.get_key_element()] = distribution(override)
        else:
            fixed.append(override.input_line)
    return space, fixed


def override_value(value: Any) -> str:
    """A value written back in the override grammar (strings quoted, dicts and lists nested)."""
    if isinstance(value, str):
        # Hydra reads backslashes literally except in a run just before a quote or the end
        escaped = re.sub(r"(\\*)(?='|\Z)", lambda run: run.group(1) * 2, value)
        return "'" + escaped.replace("'", "\\'") + "'"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else repr(value)
