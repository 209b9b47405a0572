"""The in-project Optuna sweeper: discovery, search spaces, the task contract, resumable sweeps.

The dummy-app tests run ``tests/sweeper_app/app.py`` (instant closed-form metrics, MLflow runs
logged like the real pipeline's) from a temporary folder, as subprocess sweeps (all but one
behind ``slow``); other ``slow`` ones run the real ``src/train.py`` on tiny data.
``tests/test_optuna_examples.py`` runs the official plugin's examples.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import RetryFailedTrialCallback
from optuna.trial import TrialState

from hydra_plugins.signdistill_sweeper._impl import PRUNING_TARGET, OptunaSweeperImpl, directions
from hydra_plugins.signdistill_sweeper._results import objective_values
from hydra_plugins.signdistill_sweeper._sampling import TrialSeeded, sampler
from hydra_plugins.signdistill_sweeper._space import SearchSpace, SearchSpaceError, distribution
from hydra_plugins.signdistill_sweeper._storage import (
    heartbeat_interval,
    journal_path,
    open_storage,
)
from hydra_plugins.signdistill_sweeper._tracking import StudyRuns, parent_run
from hydra_plugins.signdistill_sweeper.config import SAMPLERS
from hydra_plugins.signdistill_sweeper.job import running_trial
from hydra_plugins.signdistill_sweeper.sweeper import OptunaSweeper
from signdistill import tracking
from signdistill.errors import UserError
from signdistill.overrides import override_value
from signdistill.pareto import hypervolume, pareto_mask
from signdistill.urls import redact_url

from sweep_helpers import ROOT, child_runs, run_side_by_side, study, sweep

TESTS = Path(__file__).resolve().parent
APP = TESTS / "sweeper_app" / "app.py"
PLAIN_APP = TESTS / "plain_app" / "app.py"
SRC = ROOT / "src"
SINGLE = [  # the dummy app's sweep as a single-objective study
    "hydra.sweeper.study_name=single",
    "hydra.sweeper.objectives=[val_acc]",
    "hydra.sweeper.directions=[maximize]",
]
NEVER_PRUNE = "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:0.0}"


def test_plugin_is_discovered_and_registered():
    # Hydra imports plugin modules itself while scanning: compare by name, not identity
    names = {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Sweeper)}
    assert f"{OptunaSweeper.__module__}.{OptunaSweeper.__name__}" in names
    store = ConfigStore.instance()
    assert "signdistill_optuna.yaml" in store.list("hydra/sweeper")
    presets = {"tpe", "random", "cmaes", "nsgaii", "qmc", "grid"}
    assert {f"{name}.yaml" for name in presets} <= set(store.list("hydra/sweeper/sampler"))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("x=interval(0.5, 4.0)", FloatDistribution(0.5, 4.0)),
        ("x=tag(log, interval(0.001, 0.1))", FloatDistribution(0.001, 0.1, log=True)),
        ("x=int(interval(1, 9))", IntDistribution(1, 9)),
        ("x=tag(log, int(interval(1, 5)))", IntDistribution(1, 5, log=True)),
        ("x=int(range(2, 10, 2))", IntDistribution(2, 8, step=2)),  # Hydra's range: 10 excluded
        ("x=range(0, 10, 3)", IntDistribution(0, 9, step=3)),  # its last value, 9, included
        ("x=range(0.0, 1.0, 0.25)", FloatDistribution(0.0, 0.75, step=0.25)),
        ("x=choice(a, b, 3)", CategoricalDistribution(["a", "b", 3])),
    ],
)
def test_override_grammar_becomes_optuna_distributions(line, expected):
    override = OverridesParser.create().parse_overrides([line])[0]
    assert distribution(override) == expected


def test_a_command_line_value_fixes_a_swept_key_and_a_command_line_sweep_replaces_its_range():
    space = SearchSpace.parse(
        {"a": "interval(0, 1)", "b": "choice(1, 2)", "c": "4"},
        ["b=3", "a=interval(0.5, 1)", "++d=x", "e=choice(p, q)"],
    )
    assert space.distributions() == {
        "a": FloatDistribution(0.5, 1.0),
        "e": CategoricalDistribution(["p", "q"]),
    }
    assert space.fixed_lines() == ["c=4", "b=3", "++d=x"]
    assert space.fixed_values() == {"c": "4", "b": "3", "++d": "x"}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("x=interval(10.0, 1.0)", "an empty interval"),
        ("x=int(interval(5, 1))", "an empty interval"),
        ("x=tag(log, interval(0.0, 4.0))", "a log scale needs both ends above 0"),
        ("x=tag(log, interval(-1.0, 4.0))", "a log scale needs both ends above 0"),
        ("x=range(5, 1)", "no values to sweep"),
    ],
)
def test_a_search_space_optuna_cannot_sample_is_refused_naming_the_key(line, problem):
    """Refused when parsed: before the sweep opens its study or any MLflow run."""
    with pytest.raises(SearchSpaceError, match=rf"^{re.escape(line)}: {problem}") as err:
        SearchSpace.parse({}, [line])  # the command line
    assert isinstance(err.value, UserError)  # one line, exit 2 (src/train.py)
    with pytest.raises(SearchSpaceError, match=rf"^{re.escape(line)}: {problem}"):
        SearchSpace.parse({"x": line.removeprefix("x=")}, [])  # a sweep file's params


def test_a_grid_takes_hydras_own_values_and_no_interval():
    space = SearchSpace.parse({"x": "choice(-1, 1)", "y": "range(-1.0, 1.0, step=1)"}, [])
    assert space.grid() == {"x": [-1, 1], "y": [-1.0, 0.0]}
    with pytest.raises(ValueError, match="interval"):
        SearchSpace.parse({"x": "interval(0, 1)"}, []).grid()


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
        {"optuna.trial_number": "3", "optuna.study_name": "a study"},  # dotted keys: run tags
    ],
)
def test_values_written_as_overrides_parse_back_unchanged(value):
    override = OverridesParser.create().parse_overrides([f"k={override_value(value)}"])[0]
    assert override.value() == value


@pytest.mark.parametrize(
    ("returned", "objectives", "n", "expected"),
    [
        (0.5, None, 1, [0.5]),  # a float: one objective
        (3, None, 1, [3.0]),
        ((1.0, 2), None, 2, [1.0, 2.0]),  # a tuple or list: one value per direction, in order
        ([4.0, 5.0], None, 2, [4.0, 5.0]),
        ({"val_acc": 0.9, "size": 10, "run": "x"}, ["size", "val_acc"], 2, [10.0, 0.9]),
    ],
)
def test_tasks_may_return_a_float_a_sequence_or_named_metrics(returned, objectives, n, expected):
    assert objective_values(returned, objectives, n) == expected


@pytest.mark.parametrize(
    ("returned", "objectives", "n", "message"),
    [
        (None, None, 1, "returned None; with 1 direction"),
        ("0.5x", None, 1, "takes a float"),
        ((1.0, 2.0), None, 1, "takes a float"),
        ([1.0], None, 2, "a list or tuple of 2 floats"),
        ({"val_acc": 0.9}, None, 1, "hydra.sweeper.objectives"),
        ({"val_acc": 0.9}, ["val_acc", "size"], 2, "returned no ['size']"),
    ],
)
def test_other_returns_are_refused_with_what_was_expected(returned, objectives, n, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        objective_values(returned, objectives, n)


@pytest.mark.parametrize(
    ("direction", "directions_", "expected"),
    [
        (None, None, ["minimize"]),  # the official plugin's default
        ("maximize", None, ["maximize"]),
        (["minimize", "maximize"], None, ["minimize", "maximize"]),
        (None, ["maximize", "minimize"], ["maximize", "minimize"]),
        ("maximize", ["maximize"], ["maximize"]),
    ],
)
def test_direction_is_a_string_or_a_list_beside_directions(direction, directions_, expected):
    settings = OmegaConf.create({"direction": direction, "directions": directions_})
    assert directions(settings) == expected


def test_direction_and_directions_must_agree():
    settings = OmegaConf.create({"direction": "minimize", "directions": ["maximize"]})
    with pytest.raises(ValueError, match="disagree"):
        directions(settings)


def _compose_sweeper(*overrides: str) -> DictConfig:
    """The sweeper's settings as the dummy app composes them."""
    with initialize_config_dir(str(APP.parent / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    return cfg.hydra.sweeper


@pytest.mark.filterwarnings("error")  # presets pass no argument Optuna 5 deprecates
@pytest.mark.parametrize(
    "preset",
    [
        pytest.param(name, marks=pytest.mark.filterwarnings("ignore:QMCSampler is experimental"))
        if name == "qmc"  # Optuna's own word on QMC, said however it is built
        else name
        for name in sorted(SAMPLERS)
    ],
)
def test_every_sampler_preset_is_seeded_by_sampler_seed(preset):
    settings = _compose_sweeper(f"hydra/sweeper/sampler={preset}", "hydra.sweeper.sampler.seed=7")
    assert settings.sampler.seed == 7
    space = SearchSpace.parse({"x": "range(0, 8)", "y": "range(0.0, 1.0, step=0.25)"}, [])

    def points() -> list[dict]:
        s = optuna.create_study(sampler=sampler(settings.sampler, space))
        asked = [s.ask(space.distributions()) for _ in range(6)]
        for trial in asked:
            s.tell(trial, trial.params["x"] + trial.params["y"])
        return [t.params for t in asked]

    first = points()
    built = sampler(settings.sampler, space)
    inner = built.inner if isinstance(built, TrialSeeded) else built  # the grid is not wrapped
    assert f"optuna.samplers.{type(inner).__name__}" == SAMPLERS[preset]._target_
    assert points() == first  # the seed reached the sampler
    assert len({tuple(p.values()) for p in first}) > 1


def test_workers_sharing_a_study_draw_different_points_each_trial_its_own():
    # Two workers start together on one study with the same seeded sampler: before, each was
    # seeded past the trials it saw at start (none), so they drew the same points in step.
    settings = _compose_sweeper("hydra/sweeper/sampler=tpe", "hydra.sweeper.sampler.seed=0")
    space = SearchSpace.parse({"x": "interval(0.0, 1.0)", "y": "interval(0.0, 1.0)"}, [])
    storage = optuna.storages.InMemoryStorage()
    workers = [
        optuna.create_study(
            study_name="shared",
            storage=storage,
            sampler=sampler(settings.sampler, space),
            load_if_exists=True,
        )
        for _ in range(2)
    ]
    asked = [w.ask(space.distributions()) for _ in range(3) for w in workers]  # in step
    assert len({tuple(t.params.values()) for t in asked}) == 6
    alone = optuna.create_study(sampler=sampler(settings.sampler, space))
    first = alone.ask(space.distributions())  # trial 0, whichever worker asks it
    assert first.params == asked[0].params


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
    space = SearchSpace.parse(OmegaConf.to_container(settings.params), [])
    assert space.distributions() and not space.fixed
    assert len(settings.objectives) == len(directions(settings))
    assert sampler(settings.sampler, space) is not None
    # the search-path plugin gave this app, and only this one (see the plain app), sweeps/


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


@pytest.mark.parametrize(
    ("values", "reference", "expected"),
    [
        # maximize accuracy, minimize bytes; rectangles 0.8 x 8 and 0.6 x 9 overlap in 0.6 x 8
        ([[0.8, 2.0], [0.6, 1.0], [0.5, 5.0]], [0.0, 10.0], 0.8 * 8 + 0.6 * 1),
        ([[0.8, 2.0], [0.8, 2.0]], [0.0, 10.0], 6.4),  # a repeated point adds nothing
        ([[0.8, 12.0], [0.5, 5.0]], [0.0, 10.0], 2.5),  # beyond the reference: nothing
        ([[0.8, 12.0]], [0.0, 10.0], 0.0),
        # a reference that is not 0 in the maximized objective: (0.8 - 0.5) x (10 - 2)
        ([[0.8, 2.0], [0.4, 1.0]], [0.5, 10.0], 0.3 * 8),
    ],
)
def test_hypervolume_of_a_hand_made_front(values, reference, expected):
    volume = hypervolume(np.array(values), ["maximize", "minimize"], reference)
    assert volume == pytest.approx(expected)


def test_storage_password_is_redacted():
    assert redact_url("postgresql://bob:s3cret@127.0.0.1:5432/optuna") == (
        "postgresql://bob:***@127.0.0.1:5432/optuna"
    )
    assert redact_url("sqlite:///mlruns/optuna.db") == "sqlite:///mlruns/optuna.db"


def _run_plain_app(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PLAIN_APP), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_an_unrelated_hydra_app_starts_without_mlflow_and_without_the_projects_configs(tmp_path):
    # The project's editable install puts its plugins on every app's path, as here.
    plugins = _run_plain_app("--info", "plugins").stdout
    assert "OptunaSweeper" in plugins and "SweepsSearchPath" in plugins  # scanned
    run = _run_plain_app(f"hydra.run.dir={tmp_path}")
    assert "imported: []" in run.stdout  # no mlflow, optuna, torch or signdistill at scan time
    searchpath = _run_plain_app("--info", "searchpath").stdout.splitlines()
    providers = {line.split("|")[1].strip() for line in searchpath if line.startswith("| ")}
    assert providers == {"Provider", "hydra", "main", "schema"}  # the project's app: see below


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
    # raises inside training, after the trial's run started (a bad learning rate no longer does:
    # the config's check refuses it before any run)
    bad = "+train.callbacks.stop={_target_:lightning.pytorch.callbacks.EarlyStopping,monitor:nope}"
    going_on = sweep(tmp_path, bad, "hydra.sweeper.n_trials=2", "hydra.sweeper.max_failures=5")
    assert going_on.returncode == 0, going_on.stderr[-3000:]
    s = study(tmp_path)
    assert [t.state.name for t in s.trials] == ["FAIL", "FAIL"]
    assert "nope" in s.trials[0].user_attrs["error"]
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
        "++prune.recover_epochs=1",  # the student path's prune=none has no such key
        "export.latency_runs=0",
        name="compression_pareto",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(tmp_path, name="compression_pareto_isl_sim").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    paths = {"student": {"model.width"}, "pruned_teacher": {"prune.amount", "prune.recover"}}
    for t in trials:  # each trial samples its own path's knobs only
        path = t.params["+sweeps/compression"]
        assert set(t.params) == {"+sweeps/compression", "export.deploy", *paths[path]}
        assert 0 <= t.values[0] <= 1 and t.values[1] > 0
    children, _ = child_runs(tmp_path)
    roles = dict(zip(children["tags.optuna.trial_number"], children["tags.role"], strict=True))
    for t in trials:  # a pruned trial is recorded as the pruned teacher it is
        expected = "student" if t.params["+sweeps/compression"] == "student" else "pruned"
        assert roles[str(t.number)] == expected


@pytest.mark.slow
def test_pruned_sweep_gives_the_pipeline_optunas_lightning_callback(tmp_path):
    result = sweep(tmp_path, "hydra.sweeper.n_trials=2", name="student_accuracy")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(tmp_path, name="student_accuracy_isl_sim").trials
    assert all(t.intermediate_values for t in trials)  # val_acc reported per epoch


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


def app_sweep(root: Path, *overrides: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        app_command(*overrides),
        cwd=root,
        env=app_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def job_configs(root: Path) -> list[DictConfig]:
    """The composed task config of every job of the sweeps run in ``root``, in job order."""
    files = (root / "multirun").glob("*/*/.hydra/config.yaml")
    # multirun/<sweep: time of day>/<job: its number>/.hydra/config.yaml
    return [
        OmegaConf.load(f)
        for f in sorted(files, key=lambda f: (f.parents[2].name, f.parents[1].name.zfill(9)))
    ]


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
    assert {"trials.csv", "pareto_front.png", "pareto_interactive.html"} <= artifacts
    # the study run's description: the front as a table, each trial linking its run (issue #26)
    note = parent["tags.mlflow.note.content"]
    linked = dict(re.findall(r"\[trial-(\d+)\]\(#/experiments/\d+/runs/(\w+)\?", note))
    by_number = children.set_index("tags.optuna.trial_number")["run_id"]
    assert linked == {
        str(t.number): by_number[str(t.number)]
        for t, on in zip(s.trials, expected, strict=True)
        if on
    }
    assert "| trial | val_acc | size_file_bytes | size_deployed_bytes | x | width |" in note
    views = mlflow.get_experiment_by_name("signdistill").tags
    assert "mlflow.sharedViewState.pareto_dummy" in views  # the study's view in the UI
    # the front's hypervolume after every completed trial, a stepped metric of the study's run
    history = mlflow.MlflowClient().get_metric_history(parent["run_id"], "hypervolume")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == sorted(m.value for m in history)  # it never shrinks
    ref = [0.0, 10_000.0]
    assert history[-1].value == pytest.approx(
        hypervolume(np.array([t.values for t in s.trials]), ["maximize", "minimize"], ref)
    )
    # the Pareto-optimal trials, in the sweep folder and on the console, objectives by name
    (results_file,) = (root / "multirun").glob("*/optimization_results.yaml")
    solutions = OmegaConf.to_container(OmegaConf.load(results_file).solutions)
    front = [t for t, on_front in zip(s.trials, expected, strict=True) if on_front]
    assert {t["number"]: t["params"] for t in solutions} == {t.number: t.params for t in front}
    by_number = {t.number: t for t in front}
    for solution in solutions:
        trial = by_number[solution["number"]]
        assert solution["values"] == trial.values  # the official format
        assert solution["objectives"] == {
            "val_acc": trial.values[0],
            "size_file_bytes": trial.values[1],
        }
    assert f"Pareto front: {len(front)} trials" in first.stdout
    assert f"trial {front[0].number}: val_acc=" in first.stdout
    assert "values_0" not in first.stdout
    csv = mlflow.artifacts.download_artifacts(run_id=parent["run_id"], artifact_path="trials.csv")
    columns = pd.read_csv(csv).columns
    assert {"values_val_acc", "values_size_file_bytes"} <= set(columns)
    assert "values_0" not in columns

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


@pytest.mark.slow  # a subprocess sweep of the dummy app
def test_trial_jobs_get_the_tracking_overrides_of_the_task_contract(root):
    result = app_sweep(root, "hydra.sweeper.n_trials=2")
    assert result.returncode == 0, result.stderr[-3000:]
    parent = study(root, name="dummy").user_attrs["mlflow_parent_run_id"]
    for number, cfg in enumerate(job_configs(root)):
        assert cfg.logger.parent_run_id == parent
        assert cfg.logger.run_name == f"trial-{number}"
        assert cfg.logger.tags == {"optuna.trial_number": str(number), "optuna.study_name": "dummy"}
        assert cfg.train.callbacks == {}  # no pruner: no pruning callback


@pytest.mark.slow  # a subprocess sweep of the dummy app
def test_a_value_fixed_on_the_command_line_holds_for_every_trial(root):
    # width is swept in the app's config; a plain value on the command line fixes it
    result = app_sweep(root, "width=2.0", "x=interval(0.9, 1.0)")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(root, name="dummy").trials
    assert len(trials) == 3
    for t in trials:
        assert set(t.params) == {"x"} and 0.9 <= t.params["x"] <= 1.0
        assert t.user_attrs["width"] == "2.0"  # the study says how the trial ran
        assert t.values[1] == pytest.approx(2000.0)  # the task ran with width=2.0
    assert {cfg.width for cfg in job_configs(root)} == {2.0}


@pytest.mark.slow  # a subprocess sweep of the dummy app
@pytest.mark.parametrize(
    ("returns", "settings"),
    [
        ("float", ["hydra.sweeper.directions=[maximize]"]),  # one objective: only a direction
        ("list", []),  # [val_acc, size], in the order of the app's directions
    ],
)
def test_tasks_returning_a_float_or_a_list_complete_their_trials(root, returns, settings):
    result = app_sweep(root, f"returns={returns}", "hydra.sweeper.objectives=null", *settings)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(root, name="dummy").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    for t, cfg in zip(trials, job_configs(root), strict=True):
        width, x = cfg.width, cfg.x
        val_acc = width / (1.0 + width) - (x - 0.3) ** 2
        assert t.values == pytest.approx([val_acc, 1000.0 * width][: len(t.values)])


@pytest.mark.slow  # a subprocess sweep of the dummy app
def test_a_task_returning_something_else_fails_its_trial_and_the_sweep_goes_on(root):
    result = app_sweep(root, "returns=nothing")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(root, name="dummy").trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 3  # none left RUNNING
    assert "the task returned None" in trials[0].user_attrs["error"]
    children, _ = child_runs(root)
    assert set(children["tags.optuna.trial_state"]) == {"FAIL"}


@pytest.mark.slow  # a subprocess sweep of the dummy app
def test_a_grid_sweep_that_runs_out_of_points_ends_cleanly(root):
    result = app_sweep(
        root,
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.n_trials=6",
        "x=choice(0.2, 0.4)",
        "width=range(1, 3)",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "The grid is exhausted" in result.stdout and "after 4 of 6 trials" in result.stdout
    trials = study(root, name="dummy").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert sorted((t.params["x"], t.params["width"]) for t in trials) == [
        (0.2, 1),
        (0.2, 2),
        (0.4, 1),
        (0.4, 2),
    ]
    again = app_sweep(root, "hydra/sweeper/sampler=grid", "x=choice(0.2, 0.4)", "width=range(1, 3)")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "after 0 of 3 trials" in again.stdout  # a resumed, finished grid: nothing to do


@pytest.mark.slow  # a subprocess sweep of the dummy app
def test_the_sweepers_overrides_stay_out_of_override_dirname(root):
    result = app_sweep(
        root,
        *SINGLE,
        NEVER_PRUNE,
        "hydra.sweeper.callbacks_key=elsewhere.callbacks",  # the storage URL goes there
        "hydra.sweeper.n_trials=2",
        "hydra.sweep.subdir=${hydra.job.override_dirname}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (root / "multirun").iterdir()
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert len(jobs) == 2 and all((job / ".hydra").is_dir() for job in jobs)  # not nested
    for job in jobs:
        assert {kv.split("=")[0] for kv in job.name.split(",")} == {"width", "x"}
    for cfg in job_configs(root):  # the overrides did reach the jobs
        assert cfg.logger.run_name.startswith("trial-")
        assert cfg.elsewhere.callbacks.trial_pruning.storage.startswith("sqlite:///")
        assert cfg.train.callbacks == {}  # callbacks_key moved the pruning callback


@pytest.mark.slow  # a subprocess sweep of the dummy app
def test_dummy_failures_are_recorded_and_the_sweep_goes_on_until_capped(root):
    result = app_sweep(
        root, "fail_above=0.5", "hydra.sweeper.n_trials=20", "hydra.sweeper.max_failures=2"
    )
    assert result.returncode != 0  # the third failure exceeds max_failures=2
    assert "max_failures" in result.stderr and "above fail_above" in result.stderr
    trials = study(root, name="dummy").trials
    states = [t.state for t in trials]
    assert states == [
        TrialState.FAIL if t.params["x"] > 0.5 else TrialState.COMPLETE for t in trials
    ]
    assert states.count(TrialState.FAIL) == 3 and states[-1] == TrialState.FAIL
    first_fail = states.index(TrialState.FAIL)
    assert TrialState.COMPLETE in states[first_fail:]  # the sweep went on after a failure
    assert "above fail_above" in trials[first_fail].user_attrs["error"]
    children, parents = child_runs(root)
    by_trial = children.set_index("tags.optuna.trial_number")
    for t in trials:
        run = by_trial.loc[str(t.number)]
        assert run["tags.optuna.trial_state"] == t.state.name
        assert run["status"] == ("FAILED" if t.state == TrialState.FAIL else "FINISHED")
    (parent,) = parents.to_dict("records")  # the study's run ends FAILED, saying why
    assert parent["status"] == "FAILED"
    assert "SweepFailedError" in parent["tags.signdistill.error"]
    assert "max_failures=2" in parent["tags.signdistill.error"]


@pytest.mark.slow  # a subprocess sweep of the dummy app
def test_dummy_pruned_trials_are_pruned_not_failed(root):
    pruner = "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:0.18}"
    result = app_sweep(root, *SINGLE, "hydra.sweeper.n_trials=3", pruner)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(root, name="single").trials
    pruned = [t.intermediate_values[0] < 0.18 for t in trials]
    assert [t.state == TrialState.PRUNED for t in trials] == pruned
    assert any(pruned) and not all(pruned)
    children, _ = child_runs(root)
    states = children.set_index("tags.optuna.trial_number")["tags.optuna.trial_state"]
    assert [states[str(t.number)] for t in trials] == [t.state.name for t in trials]
    callback = job_configs(root)[0].train.callbacks.trial_pruning
    assert callback._target_ == PRUNING_TARGET
    assert PRUNING_TARGET == "hydra_plugins.signdistill_sweeper.job.pruning_callback"
    assert callback.study_name == "single"
    assert callback.storage == f"sqlite:///{root}/mlruns/optuna.db"
    assert callback.trial_id == trials[0]._trial_id
    assert callback.pruner == {"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.18}


@pytest.mark.slow  # a subprocess sweep of the dummy app
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
        assert t.user_attrs["test_acc"] == pytest.approx(t.values[0] - 0.02)  # other metrics
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


@contextlib.contextmanager
def running_trial_sweep(root: Path, *overrides: str) -> Iterator[subprocess.Popen]:
    """A one-trial dummy sweep whose trial sleeps, yielded once its trial's run exists; killed
    on the way out if the caller left it running."""
    doomed = subprocess.Popen(
        app_command(*overrides, "hydra.sweeper.n_trials=1", "sleep_s=60"),
        cwd=root,
        env=app_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_trial_run(root, deadline_s=60)
        yield doomed
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()


@pytest.mark.slow  # a subprocess sweep of the dummy app
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_dummy_killed_worker_trial_is_failed_and_retried(root):
    beat = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2"]
    with running_trial_sweep(root, *beat) as doomed:
        doomed.kill()  # SIGKILL: no handler runs, the trial stays RUNNING in the study
        doomed.wait()
    assert study(root, name="dummy").trials[0].state == TrialState.RUNNING
    # the study's run, also left RUNNING, names its process: the next run here marks it FAILED
    (parent,) = child_runs(root)[1].to_dict("records")
    assert parent["status"] == "RUNNING"
    assert parent["tags.signdistill.pid"] == str(doomed.pid)
    assert parent["tags.signdistill.host"] == socket.gethostname()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root}/mlruns/mlflow.db")
    assert parent["run_id"] in tracking.fail_stale_runs(client, parent["experiment_id"])
    time.sleep(3)  # past the grace period

    result = app_sweep(root, *beat, "hydra.sweeper.n_trials=1", "hydra.sweeper.max_retry=1")
    assert result.returncode == 0, result.stderr[-3000:]
    (parent,) = child_runs(root)[1].to_dict("records")  # taken over by the rerun, then ended
    assert parent["status"] == "FINISHED"
    assert parent["tags.signdistill.pid"] not in (str(doomed.pid), None)
    assert not isinstance(parent.get("tags.signdistill.error"), str)  # cleared on takeover
    stale, retry = study(root, name="dummy").trials
    assert stale.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    assert RetryFailedTrialCallback.retried_trial_number(retry) == 0
    assert retry.params == stale.params
    children, _ = child_runs(root)
    killed = children[children["tags.optuna.trial_number"] == "0"].iloc[0]
    assert killed["status"] == "FAILED"
    assert killed["tags.optuna.trial_state"] == "FAIL"
    assert "heartbeat" in killed["tags.optuna.error"]


@pytest.mark.slow  # a subprocess sweep of the dummy app
def test_ctrl_c_ends_the_study_run_killed_saying_so(root):
    with running_trial_sweep(root) as doomed:
        doomed.send_signal(signal.SIGINT)
        doomed.wait(timeout=60)
    children, parents = child_runs(root)
    assert children["status"].tolist() == ["KILLED"]
    (parent,) = parents.to_dict("records")
    assert parent["status"] == "KILLED"
    assert parent["tags.signdistill.error"].startswith("KeyboardInterrupt")


def test_a_study_run_of_a_live_process_is_joined_and_one_of_a_dead_process_taken_over(root):
    """A worker joining a study that another live process runs leaves that one's run alone (its
    owner ends it); a study run left RUNNING by a dead process is taken over."""
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlruns/mlflow.db")
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("signdistill")
    first = optuna.create_study()
    parent = parent_run(first, experiment, None)  # created, owned by this process
    assert client.get_run(parent).data.tags[tracking.PID_TAG] == str(os.getpid())
    live = str(os.getppid())  # pytest's parent: another live process
    client.set_tag(parent, tracking.PID_TAG, live)

    assert parent_run(first, experiment, None) == parent  # resumed: joined, not taken
    StudyRuns(parent, ["value"]).finish()
    joined = client.get_run(parent)
    assert joined.info.status == "RUNNING" and joined.data.tags[tracking.PID_TAG] == live

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    client.set_tag(parent, tracking.PID_TAG, str(gone.pid))  # its owner died without a word
    assert parent_run(first, experiment, None) == parent
    taken = client.get_run(parent)
    assert taken.data.tags[tracking.PID_TAG] == str(os.getpid())
    assert tracking.fail_stale_runs(client, experiment) == []  # its new owner lives
    StudyRuns(parent, ["value"]).end(RuntimeError("boom"))
    ended = client.get_run(parent)
    assert ended.info.status == "FAILED"
    assert ended.data.tags["signdistill.error"] == "RuntimeError: boom"


# Parallel launchers (hydra/launcher=joblib, submitit_local: hydra-joblib-launcher and
# hydra-submitit-launcher, the project's `cluster` extra) and the journal-file storage.

PARALLEL = ["hydra.sweeper.n_jobs=2", "hydra.sweeper.max_failures=10"]
LAUNCHERS = {  # joblib's workers: as many as cores by default
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local"],
}


def _journal(root: Path) -> str:
    return f"journal://{root}/shared/optuna.log"  # journal:///<absolute path>


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("journal:///shared/studies/optuna.log", Path("/shared/studies/optuna.log")),
        ("journal://mlruns/optuna.log", Path("mlruns/optuna.log")),
        ("sqlite:///mlruns/optuna.db", None),
        ("postgresql://bob@db/optuna", None),
    ],
)
def test_a_journal_url_names_its_file_and_a_database_url_none(url, path):
    assert journal_path(url) == path


def test_a_journal_url_without_a_file_is_refused():
    with pytest.raises(ValueError, match="name the journal file"):
        journal_path("journal://")


def test_a_pruned_trials_job_finds_its_trial_in_a_journal_file(tmp_path):
    url = _journal(tmp_path)
    created = optuna.create_study(study_name="j", storage=open_storage(url))
    asked = [created.ask() for _ in range(2)]
    trial = running_trial("j", url, asked[1]._trial_id, None)  # what job.pruning_callback does
    assert trial.number == 1
    assert heartbeat_interval(open_storage(url)) is None  # Optuna 5: no heartbeats in a journal


class _Parallel:
    """Any launcher but Hydra's basic one."""


@pytest.mark.parametrize(
    ("settings", "task", "launcher", "expected"),
    [
        (["hydra.sweeper.n_jobs=2"], [], _Parallel(), {"threads": 1}),
        (
            ["hydra.sweeper.n_jobs=2", "hydra.sweeper.trial_threads=3"],
            [],
            _Parallel(),
            {"threads": 3},
        ),
        (["hydra.sweeper.n_jobs=2"], ["threads=4"], _Parallel(), {}),  # the user's value wins
        (
            ["hydra.sweeper.n_jobs=2"],
            ["threads=choice(1,2)"],
            _Parallel(),
            {},
        ),  # or the user's sweep
        (["hydra.sweeper.n_jobs=2", "hydra.sweeper.trial_threads=null"], [], _Parallel(), {}),
        (["hydra.sweeper.n_jobs=1"], [], _Parallel(), {}),  # one job at a time
        (["hydra.sweeper.n_jobs=2"], [], BasicLauncher(), {}),  # one after another
        (["hydra.sweeper.repeat_values=[0,1]"], [], _Parallel(), {"threads": 1}),  # side by side
    ],
)
def test_jobs_side_by_side_get_one_torch_thread_each(settings, task, launcher, expected):
    impl = OptunaSweeperImpl(_compose_sweeper(*settings))
    impl.config, impl.launcher = OmegaConf.create({"threads": None}), launcher
    space = SearchSpace.parse({"x": "interval(0.0, 1.0)"}, task)
    n_repeats = len(impl.settings.repeat_values) or 1
    assert impl._trial_threads(space, n_repeats) == expected
    impl.config = OmegaConf.create({"other": 1})  # an app without a threads key: left alone
    assert impl._trial_threads(space, n_repeats) == {}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_a_trial_that_raises_or_is_killed_fails_and_the_sweep_goes_on(root, launcher):
    # rounds of two trials: {0, 1}, {2, 3}, {4, 5}; trial 2's job SIGKILLs its own process
    result = app_sweep(
        root,
        *LAUNCHERS[launcher],
        *PARALLEL,
        "hydra.sweeper.n_trials=6",
        "fail_above=0.5",
        "kill_run=trial-2",
        f"rendezvous={root}/rendezvous",
        timeout=600,  # each launcher's workers import MLflow before their first job
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(root, name="dummy").trials
    assert [t.number for t in trials] == list(range(6))
    killed_round = {2, 3}  # the launcher returns nothing for a round with a killed job
    for t in trials:
        error = t.user_attrs.get("error", "")
        if t.number in killed_round:
            assert t.state == TrialState.FAIL and "did not return" in error
        elif t.params["x"] > 0.5:
            assert t.state == TrialState.FAIL and "above fail_above" in error
        else:
            assert t.state == TrialState.COMPLETE
            assert t.user_attrs["side_by_side"] == 1.0  # the round's two jobs ran together
            assert t.user_attrs["threads"] == 1  # so: one torch thread each
    children, parents = child_runs(root)
    assert len(parents) == 1 and set(children["tags.mlflow.parentRunId"]) == {
        parents.iloc[0].run_id
    }
    by_trial = children.set_index("tags.optuna.trial_number")
    assert by_trial.loc["2", "status"] == "FAILED"  # killed while RUNNING: marked by the sweeper
    assert "RUNNING" not in set(children["status"])
    assert [by_trial.loc[str(t.number), "tags.optuna.trial_state"] for t in trials] == [
        t.state.name for t in trials
    ]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_heartbeats_go_on_while_trials_run_in_the_launchers_processes(root):
    beat = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2"]
    sweep = subprocess.Popen(
        app_command(
            *LAUNCHERS["joblib"], *PARALLEL, *beat, "hydra.sweeper.n_trials=2", "sleep_s=12"
        ),
        cwd=root,
        env=app_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_trial_run(root, deadline_s=240)
        time.sleep(4)  # twice the grace period, inside both trials
        # what another worker does before each round: fail the trials whose heartbeat is stale
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                f"sqlite:///{root}/mlruns/optuna.db", heartbeat_interval=1, grace_period=2
            )
            other = optuna.load_study(study_name="dummy", storage=storage)
            optuna.storages.fail_stale_trials(other)
        assert [t.state for t in other.get_trials()] == [TrialState.RUNNING] * 2
    finally:
        _, err = sweep.communicate(timeout=240)
    assert sweep.returncode == 0, err[-3000:]
    trials = study(root, name="dummy").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2


@pytest.mark.slow  # a subprocess sweep of the dummy app
def test_a_journal_study_resumes_and_numbering_continues(root):
    journal = f"hydra.sweeper.storage={_journal(root)}"
    first = app_sweep(root, journal)  # n_trials=3 in the app's config
    assert first.returncode == 0, first.stderr[-3000:]
    assert (root / "shared" / "optuna.log").is_file() and not (
        root / "mlruns" / "optuna.db"
    ).exists()
    second = app_sweep(root, journal, "hydra.sweeper.n_trials=2")
    assert second.returncode == 0, second.stderr[-3000:]
    s = study(root, _journal(root), name="dummy")
    assert [t.number for t in s.trials] == [0, 1, 2, 3, 4]  # numbering continues
    assert all(t.state == TrialState.COMPLETE for t in s.trials)
    assert len({tuple(sorted(t.params.items())) for t in s.trials}) == 5  # new points only
    children, parents = child_runs(root)
    assert len(parents) == 1 and len(children) == 5  # the same study run
    assert parents.iloc[0]["tags.optuna.storage"] == _journal(root)


@pytest.mark.slow  # a subprocess sweep of the dummy app
def test_two_workers_share_one_journal_file(root):
    journal = f"hydra.sweeper.storage={_journal(root)}"
    created = app_sweep(root, journal, "hydra.sweeper.n_trials=0")  # the study and its run, once
    assert created.returncode == 0, created.stderr[-3000:]
    command = app_command(journal, "hydra.sweeper.n_trials=3", "sleep_s=1")
    run_side_by_side([command, command], root, app_environment(), timeout=240)
    trials = study(root, _journal(root), name="dummy").trials
    assert sorted(t.number for t in trials) == list(range(6))  # unique, nothing lost
    assert all(t.state == TrialState.COMPLETE for t in trials)
    pids = [t.user_attrs["pid"] for t in trials]  # the basic launcher: the worker's own
    assert sorted(pids.count(pid) for pid in set(pids)) == [3, 3]  # three trials each
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6
    children, parents = child_runs(root)
    assert len(parents) == 1 and len(children) == 6
    assert set(children["tags.mlflow.parentRunId"]) == {parents.iloc[0]["run_id"]}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_project_sweep_runs_its_trials_side_by_side_on_a_parallel_launcher(tmp_path, launcher):
    result = sweep(tmp_path, *LAUNCHERS[launcher], *PARALLEL, "hydra.sweeper.n_trials=4")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(tmp_path).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    children, parents = child_runs(tmp_path)
    assert len(parents) == 1
    students = children[children["tags.role"] == "student"]
    assert sorted(students["tags.mlflow.runName"]) == ["trial-0", "trial-1", "trial-2", "trial-3"]
    assert set(students["status"]) == {"FINISHED"}
    assert set(students["tags.mlflow.parentRunId"]) == {parents.iloc[0]["run_id"]}
    assert set(students["params.threads"]) == {"1"}
    assert students["tags.signdistill.pid"].nunique() >= 2  # in the launcher's processes
    runs = mlflow.search_runs(experiment_names=["signdistill"])
    assert (runs["tags.kind"] == "teacher").sum() == 1  # one split: its teacher trained once
    assert len(list((tmp_path / "mlruns" / "teachers").glob("*/teacher.pt"))) == 1
