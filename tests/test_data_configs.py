"""Every data config matches the signatures it instantiates, and constructs without loading."""

import inspect
from pathlib import Path
from typing import get_type_hints

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig

from signdistill.data.datamodule import SignDataModule

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
