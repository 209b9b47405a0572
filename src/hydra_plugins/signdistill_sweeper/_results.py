"""What a trial's task returned, as objective values; what the study found, as a file and a log."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"
SHOWN = 10  # Pareto-optimal trials the closing log lists; the file holds all of them


def objective_values(returned: Any, objectives: Sequence[str] | None, n: int) -> list[float]:
    """The ``n`` objective values of one job's return, in ``directions`` order.

    Accepted, as in Hydra's Optuna examples: a float (one objective); a list or tuple of floats
    (one per direction); or this project's dict of named metrics, read at ``objectives``. Raises
    ValueError, saying what was expected, for anything else.
    """
    if isinstance(returned, Mapping):
        if not objectives:
            raise ValueError(
                "the task returned a dict: name its objective keys in hydra.sweeper.objectives"
            )
        missing = [key for key in objectives if key not in returned]
        if missing:
            raise ValueError(f"the task returned no {missing} (hydra.sweeper.objectives)")
        values = [returned[key] for key in objectives]
    elif isinstance(returned, Sequence) and not isinstance(returned, str):
        values = list(returned)
    else:
        values = [returned]
    unexpected = ValueError(
        f"the task returned {returned!r}; with {n} direction(s) the sweeper takes "
        + ("a float" if n == 1 else f"a list or tuple of {n} floats")
        + " or a dict holding hydra.sweeper.objectives"
    )
    if len(values) != n:
        raise unexpected
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise unexpected from None


def extra_metrics(returned: Sequence[Any], objectives: Sequence[str] | None) -> dict[str, float]:
    """The other numeric metrics of dict returns (e.g. test accuracy), averaged over repeats."""
    if not all(isinstance(r, Mapping) for r in returned):
        return {}
    keys = [
        key
        for key, value in returned[0].items()
        if key not in (objectives or []) and isinstance(value, int | float)
        if all(isinstance(r.get(key), int | float) for r in returned)
    ]
    return {key: sum(float(r[key]) for r in returned) / len(returned) for key in keys}


def save(study: optuna.Study, folder: Path) -> None:
    """Write ``optimization_results.yaml`` as the official plugin does, and log a summary.

    One objective: the best trial's params and value. Several: every Pareto-optimal trial's
    params and values (Optuna's ``best_trials``). Named objectives (``hydra.sweeper.objectives``)
    are also written by name, beside the official plugin's plain list of values.
    """
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        log.warning("No trial completed: no %s", RESULTS_FILE)
        return
    names = study.metric_names
    if len(study.directions) == 1:
        best = study.best_trial
        results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
        if names:
            results["objective"] = names[0]
        log.info("Best parameters: %s", best.params)
        log.info("Best value: %s", _values(best, names))
    else:
        front = sorted(study.best_trials, key=lambda t: t.values)
        results = {"name": "optuna", "solutions": [_solution(t, names) for t in front]}
        log.info("Pareto front: %d trials", len(front))
        for trial in front[:SHOWN]:
            log.info(
                "    trial %d: %s, params %s", trial.number, _values(trial, names), trial.params
            )
        if len(front) > SHOWN:
            log.info("    ... %d more in %s", len(front) - SHOWN, RESULTS_FILE)
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(results), folder / RESULTS_FILE)
    log.info("Results in %s", folder / RESULTS_FILE)


def _solution(trial: FrozenTrial, names: list[str] | None) -> dict[str, Any]:
    solution = {"number": trial.number, "params": trial.params, "values": trial.values}
    if names:
        solution["objectives"] = dict(zip(names, trial.values, strict=True))
    return solution


def _values(trial: FrozenTrial, names: list[str] | None) -> str:
    """A trial's objective values, by name where they have one."""
    labels = names or [f"values_{i}" for i in range(len(trial.values))]
    return ", ".join(f"{n}={v:.4g}" for n, v in zip(labels, trial.values, strict=True))
