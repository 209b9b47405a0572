"""The official Optuna sweeper's examples and their tests, run on this project's sweeper.

``tests/optuna_examples/`` holds the examples of facebookresearch/hydra's
``plugins/hydra_optuna_sweeper`` (sphere, multi-objective, custom search space, and the grid test
config); only the sweeper's name in their configs differs. The tests below are that plugin's own,
with paths made absolute. Like the official suite they run the apps with ``-W error``
(``run_python_script``): an app written for the official plugin must run cleanly here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
from hydra.test_utils.test_utils import run_process, run_python_script
from omegaconf import DictConfig, OmegaConf
from pytest import mark

EXAMPLES = Path(__file__).resolve().parent / "optuna_examples"


@mark.parametrize("with_commandline", (True, False))
def test_optuna_example(with_commandline: bool, tmpdir: Path) -> None:
    storage = "sqlite:///" + os.path.join(str(tmpdir), "test.db")
    study_name = "test-optuna-example"
    cmd = [
        str(EXAMPLES / "sphere.py"),
        "--multirun",
        "hydra.sweep.dir=" + str(tmpdir),
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=20",
        "hydra.sweeper.n_jobs=1",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.study_name={study_name}",
        "hydra/sweeper/sampler=tpe",
        "hydra.sweeper.sampler.seed=123",
        "~z",
    ]
    if with_commandline:
        cmd += [
            "x=choice(0, 1, 2)",
            "y=0",  # Fixed parameter
        ]
    run_python_script(cmd)
    returns = OmegaConf.load(f"{tmpdir}/optimization_results.yaml")
    study = optuna.load_study(storage=storage, study_name=study_name)
    best_trial = study.best_trial
    assert isinstance(returns, DictConfig)
    assert returns.name == "optuna"
    assert returns["best_params"]["x"] == best_trial.params["x"]
    if with_commandline:
        assert "y" not in returns["best_params"]
        assert "y" not in best_trial.params
        assert best_trial.user_attrs["y"] == "0"  # fixed parameters are recorded
    else:
        assert returns["best_params"]["y"] == best_trial.params["y"]
    assert returns["best_value"] == best_trial.value
    # Check the search performance of the TPE sampler (the official plugin's threshold).
    assert returns["best_value"] <= 2.27


@mark.parametrize("num_trials", (10, 1))
def test_example_with_grid_sampler(tmpdir: Path, num_trials: int) -> None:
    storage = "sqlite:///" + os.path.join(str(tmpdir), "test.db")
    study_name = "test-grid-sampler"
    cmd = [
        str(EXAMPLES / "sphere.py"),
        "--multirun",
        f"--config-dir={EXAMPLES / 'grid-conf'}",
        "--config-name=test_grid",
        "hydra.sweep.dir=" + str(tmpdir),
        "hydra.job.chdir=False",
        f"hydra.sweeper.n_trials={num_trials}",
        "hydra.sweeper.n_jobs=1",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.study_name={study_name}",
    ]
    run_python_script(cmd)
    returns = OmegaConf.load(f"{tmpdir}/optimization_results.yaml")
    assert isinstance(returns, DictConfig)
    bv, bx, by, bz = (
        returns["best_value"],
        returns["best_params"]["x"],
        returns["best_params"]["y"],
        returns["best_params"]["z"],
    )
    if num_trials >= 12:
        assert bv == 1 and abs(bx) == 1 and by == 0
    else:
        assert bx in [-1, 1] and by in [-1, 0]
    assert bz in ["foo", "bar"]
    # the grid's 8 points, each once: 10 trials asked, the sweep ended cleanly at 8
    trials = optuna.load_study(storage=storage, study_name=study_name).trials
    assert len(trials) == min(num_trials, 8)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == len(trials)


@mark.parametrize("with_commandline", (True, False))
def test_optuna_multi_objective_example(with_commandline: bool, tmpdir: Path) -> None:
    cmd = [
        str(EXAMPLES / "multi-objective.py"),
        "--multirun",
        "hydra.sweep.dir=" + str(tmpdir),
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=20",
        "hydra.sweeper.n_jobs=1",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
    ]
    if with_commandline:
        cmd += [
            "x=range(0, 5)",
            "y=range(0, 3)",
        ]
    run_python_script(cmd)
    returns = OmegaConf.load(f"{tmpdir}/optimization_results.yaml")
    assert isinstance(returns, DictConfig)
    assert returns.name == "optuna"
    if with_commandline:
        for trial_x in returns["solutions"]:
            assert trial_x["params"]["x"] % 1 == 0
            assert trial_x["params"]["y"] % 1 == 0
            # The trials must not dominate each other.
            for trial_y in returns["solutions"]:
                assert not _dominates(trial_x["values"], trial_y["values"])
    else:
        for trial_x in returns["solutions"]:
            assert trial_x["params"]["x"] % 1 in {0, 0.5}
            assert trial_x["params"]["y"] % 1 in {0, 0.5}
            # The trials must not dominate each other.
            for trial_y in returns["solutions"]:
                assert not _dominates(trial_x["values"], trial_y["values"])


def _dominates(values_x: list[float], values_y: list[float]) -> bool:
    """Whether x dominates y when both objectives are minimized (the example's directions)."""
    return all(x <= y for x, y in zip(values_x, values_y, strict=True)) and any(
        x < y for x, y in zip(values_x, values_y, strict=True)
    )


def test_the_dominance_check_above_can_fail() -> None:
    assert _dominates([1.0, 1.0], [2.0, 1.0])  # better in one, equal in the other
    assert not _dominates([1.0, 2.0], [2.0, 1.0]) and not _dominates([1.0, 1.0], [1.0, 1.0])


def test_optuna_custom_search_space_example(tmpdir: Path) -> None:
    max_z_difference_from_x = 0.3
    cmd = [
        str(EXAMPLES / "custom-search-space-objective.py"),
        "--multirun",
        "hydra.sweep.dir=" + str(tmpdir),
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=20",
        "hydra.sweeper.n_jobs=1",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        f"max_z_difference_from_x={max_z_difference_from_x}",
    ]
    run_python_script(cmd)
    returns = OmegaConf.load(f"{tmpdir}/optimization_results.yaml")
    assert isinstance(returns, DictConfig)
    assert returns.name == "optuna"
    assert abs(returns["best_params"]["x"] - returns["best_params"]["z"]) <= max_z_difference_from_x
    w = returns["best_params"]["+w"]
    assert 0 <= w <= 1


@mark.parametrize("max_failure_rate", (0.5, 1.0))
def test_failure_rate(max_failure_rate: float, tmpdir: Path) -> None:
    cmd = [
        sys.executable,
        str(EXAMPLES / "sphere.py"),
        "--multirun",
        "hydra.sweep.dir=" + str(tmpdir),
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=20",
        "hydra.sweeper.n_jobs=2",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        f"hydra.sweeper.max_failure_rate={max_failure_rate}",
        "error=true",
    ]
    _out, err = run_process(cmd, print_error=False, raise_exception=False)
    error_string = "RuntimeError: cfg.error is True"
    if max_failure_rate < 1.0:
        assert error_string in err
    else:
        assert error_string not in err


def test_without_a_logger_node_mlflow_stays_off(tmpdir: Path) -> None:
    # -X importtime lists every module the app imports, the sweeper's included
    result = subprocess.run(
        [sys.executable, "-Werror", "-X", "importtime", str(EXAMPLES / "sphere.py"), "--multirun"],
        cwd=tmpdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "optuna" in imported  # the sweep ran
    assert not {name for name in imported if name.startswith("mlflow")}
    assert os.listdir(tmpdir) == ["multirun"]  # no mlruns/ nor mlflow.db of MLflow's defaults
