"""The folder source: CSV and .npy recordings, subjects, resizing, and bad input."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from signdistill.data.folder import FolderDataset
from signdistill.data.io import resize
from signdistill.data.recordings import DataError

CHANNELS = ["emg", "acc_x", "acc_y"]


def _csv(path: Path, length: int, value: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.arange(length * 3, dtype=float).reshape(length, 3) + value
    pd.DataFrame(data, columns=CHANNELS).to_csv(path, index=False)


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "signs"
    for c, name in enumerate(["hello", "thanks"]):
        for subject in (1, 2):
            for rep in (1, 2):
                _csv(root / name / f"subject{subject}_rep{rep}.csv", 50 + 10 * rep, c)
    return root


def test_csv_tree_loads_with_subjects_and_resampling(tree, tmp_path):
    rec = FolderDataset(str(tree), length=40, subject_pattern=r"(subject\d+)_").load(tmp_path)
    assert rec.x.shape == (8, 3, 40) and rec.x.dtype == np.float32
    assert rec.classes == ["hello", "thanks"] and rec.channels == CHANNELS
    assert sorted(set(rec.groups)) == ["subject1", "subject2"]
    assert rec.x[0, 0, 0] == 0.0 and rec.x[0, 0, -1] == pytest.approx(3 * 59)  # ends kept


def test_channel_selection_and_file_stem_groups(tree, tmp_path):
    rec = FolderDataset(str(tree), length=60, resize="pad", channels=["acc_y", "emg"]).load(
        tmp_path
    )
    assert rec.channels == ["acc_y", "emg"]
    assert len(set(rec.groups)) == 4  # without a pattern each file stem is its own group


def test_npy_recordings_take_names_from_channels_txt(tmp_path):
    root = tmp_path / "npy"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            np.save(root / name / f"r{i}.npy", np.ones((2, 30)) * i)
    (root / "channels.txt").write_text("left\nright\n")
    rec = FolderDataset(str(root), length=30).load(tmp_path / "cache")
    assert rec.channels == ["left", "right"] and rec.x.shape == (6, 2, 30)
    (root / "channels.txt").write_text("left\nright\nextra\n")  # a changed file misses the cache
    with pytest.raises(DataError, match=r"channels\.txt names 3") as err:
        FolderDataset(str(root), length=30).load(tmp_path / "cache")
    assert "r0.npy" in str(err.value)


def test_npy_default_names_and_hidden_files_ignored(tmp_path):
    root = tmp_path / "npy"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        (root / name / ".DS_Store").write_bytes(b"\0")
        for i in range(3):
            np.save(root / name / f"r{i}.npy", np.full((3, 25), float(i)))
    rec = FolderDataset(str(root), length=20, resize="crop").load(tmp_path / "cache")
    assert rec.channels == ["ch_0", "ch_1", "ch_2"] and rec.x.shape == (6, 3, 20)
    assert rec.y.tolist() == [0, 0, 0, 1, 1, 1]


def test_crop_refuses_a_short_recording_naming_it(tree, tmp_path):
    with pytest.raises(DataError, match=r"shorter than data\.source\.length=65") as err:
        FolderDataset(str(tree), length=65, resize="crop").load(tmp_path)
    assert "rep1.csv" in str(err.value)


def test_resize_modes():
    x = np.arange(10, dtype=np.float32)[None, :]
    assert resize(x, 19, "resample", Path("f")).tolist()[0][:3] == [0.0, 0.5, 1.0]
    assert resize(x, 4, "crop", Path("f")).tolist() == [[3, 4, 5, 6]]
    assert resize(x, 12, "pad", Path("f")).tolist() == [[*range(10), 0, 0]]
    assert resize(x, 4, "pad", Path("f")).tolist() == [[0, 1, 2, 3]]
    with pytest.raises(DataError, match="shorter than"):
        resize(x, 20, "crop", Path("f"))


def _bad(tree: Path, name: str) -> Path:
    return tree / "hello" / name


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p.write_text("emg,acc_x,acc_y\n1,2\n3,4,5,6,7\n"), "readable CSV"),
        (lambda p: p.write_text("emg,acc_x,acc_y\n1,2,x\n"), "non-numeric"),
        (lambda p: p.write_text("emg,acc_x,acc_y\n1,2,nan\n"), "NaN"),
        (lambda p: p.write_text("emg,acc_x\n1,2\n"), "differ from the other"),
        (lambda p: p.write_bytes(b"\x93NUMPY garbage"), "readable .npy"),
        (lambda p: p.write_text("hello"), "unsupported file type"),
    ],
    ids=["corrupt", "text", "nan", "channels", "npy", "suffix"],
)
def test_bad_file_is_named(tree, tmp_path, make, problem):
    suffix = {"readable .npy": ".npy", "unsupported file type": ".txt"}.get(problem, ".csv")
    victim = _bad(tree, f"subject3_rep1{suffix}")
    make(victim)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=problem) as err:
        FolderDataset(str(tree), length=40).load(cache)
    assert str(victim) in str(err.value)
    assert not cache.exists() or not list(cache.iterdir())


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"resize": "stretch"}, "data.source.resize='stretch'"),
        ({"length": 0}, "length=0"),
        ({"subject_pattern": "(unclosed"}, "not a regex"),
    ],
)
def test_bad_settings_are_refused_before_reading(tmp_path, settings, problem):
    with pytest.raises(DataError, match=re.escape(problem)):
        FolderDataset(str(tmp_path / "nowhere"), **{"length": 10, **settings})


def test_structure_errors(tree, tmp_path):
    with pytest.raises(DataError, match="no such data folder"):
        FolderDataset(str(tmp_path / "nope"), length=10).load(tmp_path)
    with pytest.raises(DataError, match="no class sub-folders"):
        FolderDataset(str(tree / "hello"), length=10).load(tmp_path)
    with pytest.raises(DataError, match="unknown channel"):
        FolderDataset(str(tree), length=10, channels=["gyro"]).load(tmp_path)
    with pytest.raises(DataError, match="does not match"):
        FolderDataset(str(tree), length=10, subject_pattern=r"(person\d)").load(tmp_path)
    (tree / "empty").mkdir()
    with pytest.raises(DataError, match="empty class folder"):
        FolderDataset(str(tree), length=10).load(tmp_path)
    (tree / "empty").rmdir()
    with pytest.raises(DataError, match="at least 5"):
        FolderDataset(str(tree), length=10, min_per_class=5).load(tmp_path)
