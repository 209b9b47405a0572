"""Every data config matches the signatures it instantiates, and constructs without loading."""

import inspect
from pathlib import Path
from typing import get_type_hints

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig

from signdistill.data.datamodule import SignDataModule
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


def _schedule(cfg: DictConfig) -> tuple:
    """Batch, and the run's and its teacher's epochs and learning rates."""
    train, teacher = cfg.train, cfg.teacher.train
    return (
        cfg.data.batch_size,
        (train.max_epochs, train.optimizer.lr),
        (teacher.max_epochs, teacher.optimizer.lr),
    )


def test_the_simulator_has_its_own_schedule_and_the_real_data_keeps_the_recipes(tmp_path):
    student = _compose(tmp_path, "isl_sim")
    assert _schedule(student) == (64, (150, 0.006), (200, 0.002))
    assert _schedule(_compose(tmp_path, "isl_sim", "model=student_tiny")) == _schedule(student)
    assert _schedule(_compose(tmp_path, "lis")) == (32, (300, 0.003), (300, 0.001))
    assert _schedule(_compose(tmp_path, "isl_sim", "~schedule")) == (32, (300, 0.003), (300, 0.001))


def test_a_simulator_teacher_run_trains_the_teacher_its_students_look_up(tmp_path):
    teacher = compose_settings(_compose(tmp_path, "isl_sim", "model=teacher"))
    student = compose_settings(_compose(tmp_path, "isl_sim"))
    data = {"data": "the same"}
    assert teacher_key(teacher.model, teacher.train, data, 0) == teacher_key(
        student.teacher.model, student.teacher.train, data, 0
    )
