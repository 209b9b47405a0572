"""Every data config matches the signatures it instantiates, and constructs without loading."""

import inspect
from pathlib import Path
from typing import get_type_hints

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from signdistill.data.datamodule import SignDataModule
from signdistill.models import Architecture, ConvPoolLSTM
from signdistill.settings import compose as compose_settings
from signdistill.teachers import teacher_key

CONF = Path(__file__).resolve().parents[1] / "conf"
DATA_CONFIGS = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))


def _compose(tmp_path: Path, name: str, *overrides: str) -> DictConfig:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=[f"paths.root={tmp_path}", f"data={name}", *overrides])


def _check_keys(node: DictConfig, where: str) -> None:
    """Each key is an annotated parameter of ``_target_`` (what the pipeline's validator needs)."""
    target = get_method(node._target_)
    params = inspect.signature(target).parameters
    hints = get_type_hints(target.__init__ if inspect.isclass(target) else target)
    for key in node:
        if key == "_target_":
            continue
        assert key in params, f"{where}.{key}: not a parameter of {node._target_}"
        assert key in hints, f"{where}.{key}: {node._target_} does not annotate it"


def _ts_problem(folder: Path) -> None:
    for split in ("TRAIN", "TEST"):
        lines = ["@classLabel true a b", "@data", "1,2,3:a", "3,2,1:b"]
        (folder / f"Toy_{split}.ts").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("isl_sim", []),
        ("lis", ["data.source.root=null"]),
        ("folder", ["data.source.root={tmp}"]),
        (
            "folder",
            ["data.source.root={tmp}", "data.source.layout=splits", "data.split=predefined"],
        ),
        ("ts", ["data.source.root={tmp}", "data.source.name=Toy"]),
    ],
)
def test_data_configs_match_their_signatures_and_construct_without_loading(
    tmp_path, monkeypatch, name, overrides
):
    monkeypatch.delenv("SIGNDISTILL_LIS_ROOT", raising=False)
    _ts_problem(tmp_path)
    cfg = _compose(tmp_path, name, *(o.format(tmp=tmp_path) for o in overrides))
    _check_keys(cfg.data, "data")
    _check_keys(cfg.data.source, "data.source")
    dm = instantiate(cfg.data)
    assert isinstance(dm, SignDataModule) and dm.recordings is None
    assert not (tmp_path / ".cache").exists()  # nothing was read or written
    if name == "ts":
        assert dm.split_config["how"] == "predefined"


def test_every_data_config_is_covered():
    covered = {"isl_sim", "lis", "folder", "ts"}
    assert set(DATA_CONFIGS) == covered, "add the new config to the test above"


RECIPES = sorted(p.stem for p in (CONF / "recipe").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


@pytest.mark.parametrize(
    "choice", [f"+recipe={r}" for r in RECIPES] + [f"model={m}" for m in MODELS]
)
def test_a_recipe_composes_to_the_same_training_on_every_dataset(tmp_path, choice):
    """No data config rewrites a recipe: what a recipe file says is what runs on any data (the
    data's size changes only how many epochs its step bounds give, logged with the run)."""
    composed = [_compose(tmp_path, data, choice) for data in ("isl_sim", "lis")]
    for node in ("train", "teacher.train", "model", "teacher.model", "distill"):
        first, second = (OmegaConf.select(cfg, node) for cfg in composed)
        assert first == second, node


@pytest.mark.parametrize(
    ("model", "steps_per_epoch", "batch", "expected"),
    [
        ("teacher", 18, 32, (300, 5400, 1.0, 1)),  # LIS: neither bound binds
        ("student", 18, 32, (300, 5400, 1.0, 1)),
        ("teacher", 55, 64, (200, 11000, 2.0, 1)),  # the simulator: the teacher's budget
        ("student", 55, 64, (150, 8250, 2.0, 1)),
        # 36 recordings: enough steps to fit, validated every 16 steps (the last epoch too)
        ("teacher", 1, 32, (5008, 5008, 1.0, 16)),
        ("teacher", 2, 16, (2504, 5008, 0.5, 8)),
    ],
)
def test_recipes_train_in_optimizer_steps_whatever_the_size_of_the_data(
    tmp_path, model, steps_per_epoch, batch, expected
):
    cfg = _compose(tmp_path, "lis", f"model={model}")
    network = ConvPoolLSTM(Architecture(2, 3, (2, 2), (4,)))
    module = instantiate(cfg.train, model=network, _convert_="partial")
    schedule = module.schedule(steps_per_epoch, batch)
    got = (schedule.epochs, schedule.steps, schedule.lr_scale, schedule.val_every)
    assert got == expected


def test_a_simulator_teacher_run_trains_the_teacher_its_students_look_up(tmp_path):
    teacher = compose_settings(_compose(tmp_path, "isl_sim", "model=teacher"))
    student = compose_settings(_compose(tmp_path, "isl_sim"))
    data = {"data": "the same"}
    assert teacher_key(teacher.model, teacher.train, data, 0) == teacher_key(
        student.teacher.model, student.teacher.train, data, 0
    )
