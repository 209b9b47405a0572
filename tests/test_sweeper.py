"""The in-project Optuna sweeper: discovery, search spaces, Pareto tags, sweeps that resume."""

from __future__ import annotations

import mlflow
import optuna
import pytest
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.signdistill_sweeper.space import distribution, search_space
from hydra_plugins.signdistill_sweeper.sweeper import OptunaSweeper
from signdistill.pareto import pareto_mask, redact_url

from sweep_helpers import child_runs, study, sweep


def test_plugin_is_discovered_and_registered():
    # Hydra imports plugin modules itself while scanning: compare by name, not identity
    names = {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Sweeper)}
    assert f"{OptunaSweeper.__module__}.{OptunaSweeper.__name__}" in names
    assert "signdistill_optuna.yaml" in ConfigStore.instance().list("hydra/sweeper")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("x=interval(0.5, 4.0)", FloatDistribution(0.5, 4.0)),
        ("x=tag(log, interval(0.001, 0.1))", FloatDistribution(0.001, 0.1, log=True)),
        ("x=int(interval(1, 9))", IntDistribution(1, 9)),
        ("x=int(range(2, 10, 2))", IntDistribution(2, 8, step=2)),
        ("x=range(0.0, 1.0, 0.25)", FloatDistribution(0.0, 0.75, step=0.25)),
        ("x=choice(a, b, 3)", CategoricalDistribution(["a", "b", 3])),
    ],
)
def test_override_grammar_becomes_optuna_distributions(line, expected):
    override = OverridesParser.create().parse_overrides([line])[0]
    assert distribution(override) == expected


def test_command_line_sweeps_join_the_space_and_the_rest_is_fixed():
    space, fixed = search_space({"a": "interval(0, 1)"}, ["b=choice(1, 2)", "c=3", "+d=x"])
    assert set(space) == {"a", "b"} and fixed == ["c=3", "+d=x"]


def test_pareto_mask_tags_exactly_the_non_dominated_pairs():
    # (val_acc, size): maximize accuracy, minimize size
    pairs = [
        (0.90, 500),  # front: most accurate
        (0.85, 200),  # front
        (0.85, 300),  # dominated by (0.85, 200)
        (0.70, 100),  # front: smallest
        (0.60, 150),  # dominated by (0.70, 100)
        (0.85, 200),  # equal to a front point: not dominated
    ]
    assert pareto_mask(pairs, ["maximize", "minimize"]) == [True, True, False, True, False, True]
    assert pareto_mask([], ["maximize"]) == []


def test_storage_password_is_redacted():
    assert redact_url("postgresql://bob:s3cret@127.0.0.1:5432/optuna") == (
        "postgresql://bob:***@127.0.0.1:5432/optuna"
    )
    assert redact_url("sqlite:///mlruns/optuna.db") == "sqlite:///mlruns/optuna.db"


@pytest.mark.slow
def test_sweep_runs_trials_as_child_runs_and_resumes(tmp_path):
    first = sweep(tmp_path, "hydra.sweeper.n_trials=3")
    assert first.returncode == 0, first.stderr[-3000:]
    s = study(tmp_path)
    assert [t.number for t in s.trials] == [0, 1, 2]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in s.trials)

    children, parents = child_runs(tmp_path)
    assert len(parents) == 1
    parent = parents.iloc[0]
    assert parent["tags.optuna.study_name"] == "student_pareto_isl_sim"
    assert sorted(children["tags.mlflow.runName"]) == ["trial-0", "trial-1", "trial-2"]
    assert set(children["tags.mlflow.parentRunId"]) == {parent["run_id"]}
    assert set(children["tags.optuna.trial_state"]) == {"COMPLETE"}
    values = [(t.values[0], t.values[1]) for t in s.trials]
    expected = pareto_mask(values, ["maximize", "minimize"])
    by_trial = children.set_index("tags.optuna.trial_number")["tags.pareto"]
    assert [by_trial[str(i)] == "true" for i in range(3)] == expected
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent["run_id"])}
    assert {"trials.csv", "pareto_front.png"} <= artifacts

    second = sweep(tmp_path, "hydra.sweeper.n_trials=2")
    assert second.returncode == 0, second.stderr[-3000:]
    s = study(tmp_path)
    assert [t.number for t in s.trials] == [0, 1, 2, 3, 4]  # numbering continues
    points = [tuple(sorted(t.params.items())) for t in s.trials]
    assert len(set(points)) == 5  # the resumed sampler proposed new points
    children, parents = child_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 5  # the same parent run


@pytest.mark.slow
def test_failing_trials_are_recorded_and_capped(tmp_path):
    bad = "model.optimizer.lr=-1"  # raises inside training, after the trial's run started
    going_on = sweep(tmp_path, bad, "hydra.sweeper.n_trials=2", "hydra.sweeper.max_failures=5")
    assert going_on.returncode == 0, going_on.stderr[-3000:]
    s = study(tmp_path)
    assert [t.state.name for t in s.trials] == ["FAIL", "FAIL"]
    assert "learning rate" in s.trials[0].user_attrs["error"]
    children, _ = child_runs(tmp_path)
    assert set(children["status"]) == {"FAILED"}
    assert set(children["tags.optuna.trial_state"]) == {"FAIL"}

    capped = sweep(tmp_path, bad, "hydra.sweeper.n_trials=5", "hydra.sweeper.max_failures=0")
    assert capped.returncode != 0
    assert "max_failures" in capped.stderr
    assert len(study(tmp_path).trials) == 3  # stopped after the first failure over the cap


@pytest.mark.slow
def test_compression_sweep_mixes_students_and_pruned_teachers(tmp_path):
    result = sweep(
        tmp_path,
        "hydra.sweeper.n_trials=4",
        "prune.recover_epochs=1",
        "export.latency_runs=0",
        name="compression_pareto",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(tmp_path, name="compression_pareto_isl_sim").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert {"prune.amount", "prune.recover", "model.width", "export.deploy"} == set(
        trials[0].params
    )
    for t in trials:
        assert 0 <= t.values[0] <= 1 and t.values[1] > 0
