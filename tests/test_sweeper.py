"""The in-project Optuna sweeper: discovery, search spaces, Pareto tags, sweeps that resume.

The fast sweep tests run ``tests/sweeper_app/app.py`` (instant closed-form metrics, MLflow runs
logged like the real pipeline's) from a temporary folder; the ``slow`` ones run the real
``src/train.py`` on tiny data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import RetryFailedTrialCallback
from optuna.trial import TrialState

from hydra_plugins.signdistill_sweeper.space import distribution, override_value, search_space
from hydra_plugins.signdistill_sweeper.sweeper import OptunaSweeper
from signdistill.pareto import pareto_mask, redact_url

from sweep_helpers import ROOT, child_runs, study, sweep

APP = Path(__file__).resolve().parent / "sweeper_app" / "app.py"
SRC = Path(__file__).resolve().parents[1] / "src"
SINGLE = [  # the dummy app's sweep as a single-objective study
    "hydra.sweeper.study_name=single",
    "hydra.sweeper.objectives=[val_acc]",
    "hydra.sweeper.directions=[maximize]",
]


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


@pytest.mark.parametrize(
    "value",
    [
        "it's a\\b",
        "a\\'b\\\\",  # backslashes before a quote and at the end
        None,
        True,
        0.25,
        {"_target_": "optuna.pruners.PatientPruner", "patience": 2, "wrapped_pruner": None},
        {"_target_": "optuna.pruners.MedianPruner", "n_min_trials": 1, "extra": [1, "a", 2.5]},
    ],
)
def test_values_written_as_overrides_parse_back_unchanged(value):
    override = OverridesParser.create().parse_overrides([f"k={override_value(value)}"])[0]
    assert override.value() == value


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "sweeps").glob("*.yaml")))
def test_every_sweep_file_composes_and_its_settings_resolve_before_any_job(name):
    # Hydra resolves the sweeper's settings when it creates the sweeper, before HydraConfig is
    # set: ${hydra:runtime.cwd} (paths.root's default) must not be needed there.
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"+sweeps={name}"], return_hydra_config=True)
    settings = cfg.hydra.sweeper
    OmegaConf.resolve(settings)
    assert settings._target_ == f"{OptunaSweeper.__module__}.{OptunaSweeper.__name__}"
    assert settings.storage == f"sqlite:///{cfg.hydra.runtime.cwd}/mlruns/optuna.db"
    space, fixed = search_space(OmegaConf.to_container(settings.params), [])
    assert space and not fixed
    assert len(settings.objectives) == len(settings.directions)


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


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow database with its tables: creating them takes seconds, copying them does not."""
    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def root(tmp_path: Path, mlflow_template: Path) -> Path:
    """The dummy app's working directory (paths.root), holding ``mlruns/``."""
    (tmp_path / "mlruns").mkdir()
    shutil.copy(mlflow_template, tmp_path / "mlruns" / "mlflow.db")
    return tmp_path


def app_command(*overrides: str) -> list[str]:
    """`python tests/sweeper_app/app.py -m ...`, as a user runs `python src/train.py -m ...`."""
    return [sys.executable, str(APP), "-m", *overrides]


def app_environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC)}


def app_sweep(root: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        app_command(*overrides),
        cwd=root,
        env=app_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dummy_sweep_logs_trials_as_child_runs_and_resumes(root):
    first = app_sweep(root)  # n_trials=3 in the app's config
    assert first.returncode == 0, first.stderr[-3000:]
    s = study(root, name="dummy")
    assert [t.number for t in s.trials] == [0, 1, 2]
    assert all(t.state == TrialState.COMPLETE for t in s.trials)

    children, parents = child_runs(root)
    assert len(parents) == 1
    parent = parents.iloc[0]
    assert parent["tags.optuna.study_name"] == "dummy"
    assert parent["tags.optuna.storage"] == f"sqlite:///{root}/mlruns/optuna.db"
    assert s.user_attrs["mlflow_parent_run_id"] == parent["run_id"]
    assert sorted(children["tags.mlflow.runName"]) == ["trial-0", "trial-1", "trial-2"]
    assert set(children["tags.mlflow.parentRunId"]) == {parent["run_id"]}
    assert set(children["tags.optuna.trial_state"]) == {"COMPLETE"}
    assert set(children["status"]) == {"FINISHED"}
    expected = pareto_mask([t.values for t in s.trials], ["maximize", "minimize"])
    tagged = children.set_index("tags.optuna.trial_number")["tags.pareto"]
    assert [tagged[str(i)] == "true" for i in range(3)] == expected
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent["run_id"])}
    assert {"trials.csv", "pareto_front.png", "pareto_front.html"} <= artifacts

    second = app_sweep(root, "hydra.sweeper.n_trials=2")
    assert second.returncode == 0, second.stderr[-3000:]
    s = study(root, name="dummy")
    assert [t.number for t in s.trials] == [0, 1, 2, 3, 4]  # numbering continues
    assert len({tuple(sorted(t.params.items())) for t in s.trials}) == 5  # new points only
    children, parents = child_runs(root)
    assert len(parents) == 1 and len(children) == 5  # the same parent run
    expected = pareto_mask([t.values for t in s.trials], ["maximize", "minimize"])
    tagged = children.set_index("tags.optuna.trial_number")["tags.pareto"]
    assert [tagged[str(i)] == "true" for i in range(5)] == expected  # old runs re-tagged


def test_dummy_failures_are_recorded_and_the_sweep_goes_on_until_capped(root):
    result = app_sweep(
        root, "fail_above=0.5", "hydra.sweeper.n_trials=20", "hydra.sweeper.max_failures=2"
    )
    assert result.returncode != 0  # the third failure exceeds max_failures=2
    assert "max_failures" in result.stderr
    trials = study(root, name="dummy").trials
    states = [t.state for t in trials]
    assert states == [
        TrialState.FAIL if t.params["x"] > 0.5 else TrialState.COMPLETE for t in trials
    ]
    assert states.count(TrialState.FAIL) == 3 and states[-1] == TrialState.FAIL
    first_fail = states.index(TrialState.FAIL)
    assert TrialState.COMPLETE in states[first_fail:]  # the sweep went on after a failure
    assert "above fail_above" in trials[first_fail].user_attrs["error"]
    children, _ = child_runs(root)
    by_trial = children.set_index("tags.optuna.trial_number")
    for t in trials:
        run = by_trial.loc[str(t.number)]
        assert run["tags.optuna.trial_state"] == t.state.name
        assert run["status"] == ("FAILED" if t.state == TrialState.FAIL else "FINISHED")


def test_dummy_pruned_trials_are_pruned_not_failed(root):
    result = app_sweep(
        root,
        *SINGLE,
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:0.18}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(root, name="single").trials
    pruned = [t.intermediate_values[0] < 0.18 for t in trials]
    assert [t.state == TrialState.PRUNED for t in trials] == pruned
    assert any(pruned) and not all(pruned)
    children, _ = child_runs(root)
    states = children.set_index("tags.optuna.trial_number")["tags.optuna.trial_state"]
    assert [states[str(t.number)] for t in trials] == [t.state.name for t in trials]


def test_dummy_repeats_are_averaged(root):
    result = app_sweep(
        root,
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.repeat_key=seed",
        "hydra.sweeper.repeat_values=[0,1,2]",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(root, name="dummy").trials
    for t in trials:
        per_seed = t.user_attrs["per_repeat"]
        assert len(per_seed) == 3
        assert [v[0] - per_seed[0][0] for v in per_seed] == pytest.approx([0.0, 0.01, 0.02])
        assert t.values[0] == pytest.approx(sum(v[0] for v in per_seed) / 3)
    children, _ = child_runs(root)
    assert sorted(children["tags.optuna.trial_number"]) == ["0", "0", "0", "1", "1", "1"]


def _wait_for_trial_run(root: Path, deadline_s: float) -> None:
    """Until the worker's trial 0 has its MLflow run open."""
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root}/mlruns/mlflow.db")
    running = "tags.`optuna.trial_number` = '0' and attributes.status = 'RUNNING'"
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        experiment = client.get_experiment_by_name("signdistill")
        if experiment and client.search_runs([experiment.experiment_id], running):
            return
        time.sleep(0.3)
    raise AssertionError("trial 0 never started its run")


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_dummy_killed_worker_trial_is_failed_and_retried(root):
    beat = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2"]
    doomed = subprocess.Popen(
        app_command(*beat, "hydra.sweeper.n_trials=1", "sleep_s=60"),
        cwd=root,
        env=app_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_trial_run(root, deadline_s=60)
    finally:
        doomed.kill()  # SIGKILL: no handler runs, the trial stays RUNNING in the study
        doomed.wait()
    assert study(root, name="dummy").trials[0].state == TrialState.RUNNING
    time.sleep(3)  # past the grace period

    result = app_sweep(root, *beat, "hydra.sweeper.n_trials=1", "hydra.sweeper.max_retry=1")
    assert result.returncode == 0, result.stderr[-3000:]
    stale, retry = study(root, name="dummy").trials
    assert stale.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    assert RetryFailedTrialCallback.retried_trial_number(retry) == 0
    assert retry.params == stale.params
    children, _ = child_runs(root)
    killed = children[children["tags.optuna.trial_number"] == "0"].iloc[0]
    assert killed["status"] == "FAILED"
    assert killed["tags.optuna.trial_state"] == "FAIL"
    assert "heartbeat" in killed["tags.optuna.error"]
