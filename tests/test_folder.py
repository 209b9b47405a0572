"""The folder source: CSV and .npy recordings, subjects, resizing, and bad input."""

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from signdistill.data.datamodule import SignDataModule
from signdistill.data.folder import FolderDataset
from signdistill.data.io import resize
from signdistill.errors import DataError

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
        ({"layout": "nested"}, "data.source.layout='nested'"),
        ({"min_per_class": 0}, "data.source.min_per_class=0"),
    ],
)
def test_bad_settings_are_refused_before_reading(tmp_path, settings, problem):
    with pytest.raises(DataError, match=re.escape(problem)):
        FolderDataset(str(tmp_path / "nowhere"), **{"length": 10, **settings})


def test_structure_errors(tree, tmp_path):
    with pytest.raises(DataError, match=r"^data\.source\.root='.*nope': no such data folder"):
        FolderDataset(str(tmp_path / "nope"), length=10)  # refused before any loading
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


def _split_tree(root: Path, parts=("train", "test"), classes=("hello", "thanks"), per=4) -> Path:
    """root/<part>/<class>/subject<s>_rep<r>.csv; a file's values start at 1000 * part index."""
    for p, part in enumerate(parts):
        for c, name in enumerate(classes):
            for i in range(per):
                _csv(root / part / name / f"subject{i % 2 + 1}_rep{i}.csv", 30, 1000 * p + c)
    return root


def test_fixed_split_trains_and_tests_on_exactly_its_folders(tmp_path):
    root = _split_tree(tmp_path / "signs", per=10)
    source = FolderDataset(str(root), length=30, layout="splits", subject_pattern=r"(subject\d)_")
    dm = SignDataModule(source, split="predefined", val_fraction=0.2, cache_dir=str(tmp_path))
    rec = dm.prepare()
    from_test = rec.x[:, 0, 0] >= 1000  # the value written into every test/ file
    assert np.array_equal(np.flatnonzero(from_test), dm.split.test)
    assert not from_test[dm.split.train].any() and not from_test[dm.split.val].any()
    assert np.bincount(rec.y[dm.split.val]).tolist() == [2, 2]  # stratified, from train/ only
    assert len(dm.split.train) == 16 and len(dm.split.test) == 20
    assert sorted(set(rec.groups)) == ["subject1", "subject2"]  # subjects still parsed


def test_a_val_folder_is_the_validation_set(tmp_path):
    root = _split_tree(tmp_path / "signs", parts=("train", "test", "val"))
    dm = SignDataModule(
        FolderDataset(str(root), length=30, layout="splits"),
        split="predefined",
        cache_dir=str(tmp_path),
    )
    rec = dm.prepare()
    assert (rec.x[dm.split.val, 0, 0] >= 2000).all() and len(dm.split.val) == 8
    assert len(dm.split.train) == 8 and (rec.x[dm.split.train, 0, 0] < 1000).all()


def test_a_class_missing_from_test_is_named_with_its_folder(tmp_path):
    root = _split_tree(tmp_path / "signs")
    shutil.rmtree(root / "test" / "thanks")
    (root / "test" / "extra").mkdir()
    _csv(root / "test" / "extra" / "a.csv", 30)
    with pytest.raises(DataError, match=r"no recordings of class\(es\) \['thanks'\]") as err:
        FolderDataset(str(root), length=30, layout="splits").load(tmp_path / "cache")
    assert str(err.value).startswith(f"{root / 'test'}: ")


@pytest.mark.parametrize(
    ("folders", "problem"),
    [(("train", "valid", "test"), r"unexpected \['valid'\]"), (("train",), r"missing \['test'\]")],
)
def test_splits_layout_wants_train_test_and_optional_val(tmp_path, folders, problem):
    root = _split_tree(tmp_path / "signs", parts=folders)
    with pytest.raises(DataError, match=problem):
        FolderDataset(str(root), length=30, layout="splits").load(tmp_path / "cache")


def test_predefined_split_needs_a_partitioned_layout(tree):
    with pytest.raises(DataError, match=r"^data\.split=predefined: .*data\.source\.layout=splits"):
        SignDataModule(FolderDataset(str(tree), length=30), split="predefined")


def test_differing_header_names_the_odd_file_even_when_read_first(tree, tmp_path):
    odd = tree / "hello" / "a_first.csv"  # sorts before every other recording
    odd.write_text("emg,acc_x\n" + "1,2\n" * 60)
    with pytest.raises(DataError) as err:
        FolderDataset(str(tree), length=40).load(tmp_path)
    message = str(err.value)
    assert message.startswith(f"{odd}: channels ['emg', 'acc_x'] differ from the other")
    assert "['emg', 'acc_x', 'acc_y']" in message and "lacks ['acc_y']" in message
    assert "the header of 8 of the 9 files" in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("emg,acc_x,acc_y\n1,2,3\n1,2\n4,5,6\n", r"line 3: 2 value\(s\) .* \(a short, ragged row"),
        ("emg,acc_x,acc_y\n1,2,3,4\n5,6,7,8\n", r"line 2: 4 value\(s\) .* \(a long, ragged row"),
        ("emg,acc_x,acc_y\n1,2,3\n\n4,,6\n", r"line 4, channel 'acc_x': '' is missing"),
    ],
    ids=["short", "every-row-long", "empty-cell"],
)
def test_ragged_rows_and_empty_cells_name_the_line(tree, tmp_path, text, problem):
    victim = tree / "hello" / "subject3_rep1.csv"
    victim.write_text(text)
    with pytest.raises(DataError, match=problem) as err:
        FolderDataset(str(tree), length=40).load(tmp_path)
    assert str(err.value).startswith(f"{victim}: ")


def test_a_single_class_is_refused(tree, tmp_path):
    shutil.rmtree(tree / "thanks")
    with pytest.raises(DataError, match=r"1 class folder\(s\) \['hello'\]; .* at least 2 classes"):
        FolderDataset(str(tree), length=40).load(tmp_path)


def test_a_link_that_leads_nowhere_is_named_not_skipped(tree, tmp_path):
    loop = tree / "hello" / "loop.csv"
    loop.symlink_to("loop.csv")  # itself
    with pytest.raises(DataError, match="symbolic link that leads nowhere") as err:
        FolderDataset(str(tree), length=40).load(tmp_path)
    assert str(err.value).startswith(str(loop))
    loop.unlink()
    loop.symlink_to(tree / "hello" / "subject1_rep1.csv")  # a link to a recording is one
    assert len(FolderDataset(str(tree), length=40).load(tmp_path).y) == 9


def test_a_pandas_index_column_is_refused_naming_the_file_and_column(tree, tmp_path):
    victim = tree / "thanks" / "subject2_rep1.csv"
    pd.read_csv(victim).to_csv(victim)  # index=True, pandas' default: a column without a name
    with pytest.raises(DataError, match=r"column 'Unnamed: 0' has no name") as err:
        FolderDataset(str(tree), length=40).load(tmp_path)
    assert str(err.value).startswith(str(victim)) and "index=False" in str(err.value)


def test_a_subject_split_needs_subjects(tree, tmp_path):
    no_subjects = FolderDataset(str(tree), length=40)
    with pytest.raises(DataError, match=r"^data\.split=subject: .*data\.source\.subject_pattern"):
        SignDataModule(no_subjects, split="subject", cache_dir=str(tmp_path))
    with_subjects = FolderDataset(str(tree), length=40, subject_pattern=r"(subject\d+)_")
    SignDataModule(with_subjects, split="subject", cache_dir=str(tmp_path))  # accepted
