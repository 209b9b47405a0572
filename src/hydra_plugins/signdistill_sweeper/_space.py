"""Hydra's override grammar -> Optuna's search space (interval, range, choice, tag) and back.

A search space Optuna cannot sample (a reversed interval, a range without values, a log scale that
reaches 0) is refused when it is parsed, before the sweep opens its study or any MLflow run, with
one line naming the key (:class:`SearchSpaceError`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.errors import CompactHydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from signdistill.errors import ConfigError, UserError


class SweepInputError(UserError, CompactHydraException):
    """A user's error that stops a sweep before any trial. Hydra prints it as one line, without a
    traceback, as it does its own override errors (and ``src/train.py`` exits with 2)."""


class SearchSpaceError(SweepInputError, ConfigError):
    """A sweep key whose values Optuna cannot sample."""


def sweep_values(override: Override) -> list[Any]:
    """The values Hydra itself would sweep for a ``choice`` or ``range`` override.

    ``range(a, b, s)`` follows Python and Hydra: b is excluded (the official Optuna plugin
    includes it).
    """
    return list(override.sweep_iterator(transformer=Transformer.encode))


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override.

    A ``range`` spans exactly Hydra's values of it, with its step; a ``shuffle``d range or a
    ``choice`` is categorical. ``tag(log, interval(a, b))`` samples on a log scale; integers on
    both ends of an interval give an integer distribution.
    """
    value = override.value()
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if value.start > value.end:
            raise ValueError("an empty interval, its start above its end")
        if log and value.start <= 0:
            raise ValueError("a log scale needs both ends above 0")
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(value.start, value.end, log=log)
    if override.is_sweep_override() and not sweep_values(override):
        raise ValueError("no values to sweep (a range's stop must lie beyond its start)")
    if isinstance(value, RangeSweep) and not value.shuffle:
        values = sweep_values(override)
        step = abs(value.step)
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            return FloatDistribution(min(values), max(values), step=step)
        return IntDistribution(min(values), max(values), step=step)
    if override.is_sweep_override():
        return CategoricalDistribution(sweep_values(override))
    raise ValueError("not a sweep override Optuna can sample")


@dataclass(frozen=True)
class SearchSpace:
    """The sweeper's ``params`` and the command line, one override per key.

    A later override of a key replaces an earlier one, whatever its prefix (``+``, ``++``, ``~``):
    a command-line value fixes a key the config sweeps, and a command-line sweep replaces the
    config's range of that key.
    """

    sweeps: dict[str, Override]  # by key as written (with its prefix): what Optuna samples
    fixed: list[Override]  # passed unchanged to every trial

    @classmethod
    def parse(cls, params: Mapping[str, str], arguments: Sequence[str]) -> SearchSpace:
        lines = [f"{key}={value}" for key, value in params.items()]
        latest: dict[str, Override] = {}
        for override in OverridesParser.create().parse_overrides([*lines, *arguments]):
            key = override.get_key_element().lstrip("+~")  # the config key, without its prefix
            latest.pop(key, None)  # re-inserted last: the trial's overrides keep the given order
            latest[key] = override
        space = cls(
            sweeps={o.get_key_element(): o for o in latest.values() if o.is_sweep_override()},
            fixed=[o for o in latest.values() if not o.is_sweep_override()],
        )
        space.distributions()  # refuses what Optuna cannot sample, naming the key
        return space

    def distributions(self) -> dict[str, BaseDistribution]:
        """Each swept key's Optuna distribution; SearchSpaceError names a key that has none."""
        found = {}
        for key, override in self.sweeps.items():
            try:
                found[key] = distribution(override)
            except ValueError as e:
                raise SearchSpaceError(
                    f"{override.input_line}: {e} (the sweep's search space)"
                ) from None
        return found

    def grid(self) -> dict[str, list[Any]]:
        """The points of a grid search: every ``choice`` and ``range`` value."""
        intervals = [key for key, o in self.sweeps.items() if o.is_interval_sweep()]
        if intervals:
            raise SearchSpaceError(
                f"a grid search takes choice() or range() values, not interval(): {intervals}"
            )
        return {key: sweep_values(override) for key, override in self.sweeps.items()}

    def fixed_values(self) -> dict[str, str]:
        """Each fixed override's key and value as written, recorded with every trial."""
        return {o.get_key_element(): o.get_value_element_as_str() for o in self.fixed}

    def fixed_lines(self) -> list[str]:
        return [o.input_line for o in self.fixed]

    def sets(self, key: str) -> bool:
        """Whether the command line or ``params`` sets ``key`` (fixed or swept, any prefix)."""
        return any(
            o.get_key_element().lstrip("+~") == key for o in [*self.sweeps.values(), *self.fixed]
        )
