"""The UEA/UCR .ts source: headers, univariate and multivariate cases, variable lengths, missing
values, malformed lines, and the archive's fixed train/test split."""

import re
from pathlib import Path

import numpy as np
import pytest

from signdistill.data.datamodule import SignDataModule
from signdistill.data.ts import TsDataset, read_ts
from signdistill.errors import DataError
from signdistill.pipeline import run

from pipeline_helpers import make_cfg, runs

CLASSES = ("Standing", "Walking")


def _header(dims: int, length: int | None, classes=CLASSES, missing: bool = False) -> list[str]:
    lines = [
        "# written by the tests",
        "@problemName Toy",
        "@timeStamps false",
        f"@missing {str(missing).lower()}",
        f"@univariate {str(dims == 1).lower()}",
        f"@dimensions {dims}",
        f"@equalLength {str(length is not None).lower()}",
    ]
    if length is not None:
        lines.append(f"@seriesLength {length}")
    return [*lines, "@classLabel true " + " ".join(classes), "@data"]


def _case(dims: list[list[float | str]], label: str) -> str:
    return ":".join(",".join(str(v) for v in dim) for dim in dims) + f":{label}"


def _write(path: Path, header: list[str], cases: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*header, *cases]) + "\n")
    return path


def _ramp(start: float, length: int, dims: int) -> list[list[float]]:
    """Dimension d of a case: start + 10 d + 0, 1, 2, ... (so every value is traceable)."""
    return [[start + 10 * d + t for t in range(length)] for d in range(dims)]


def _problem(root: Path, name: str = "Toy", dims: int = 2, length: int = 5, n: int = 6) -> Path:
    """root/name/name_{TRAIN,TEST}.ts with ``n`` cases each, alternating the two classes.

    Case i of TRAIN starts at 100 i, of TEST at 1000 + 100 i.
    """
    for split, offset in (("TRAIN", 0), ("TEST", 1000)):
        cases = [_case(_ramp(offset + 100 * i, length, dims), CLASSES[i % 2]) for i in range(n)]
        _write(root / name / f"{name}_{split}.ts", _header(dims, length), cases)
    return root


def test_multivariate_problem_keeps_the_archive_split(tmp_path):
    root = _problem(tmp_path / "archive", dims=3)
    rec = TsDataset(str(root), "Toy").load(tmp_path / "cache")
    assert rec.x.shape == (12, 3, 5) and rec.x.dtype == np.float32
    assert rec.classes == list(CLASSES) and rec.channels == ["dim_0", "dim_1", "dim_2"]
    assert rec.partition.tolist() == ["train"] * 6 + ["test"] * 6
    assert rec.x[7, 2].tolist() == [1120.0, 1121.0, 1122.0, 1123.0, 1124.0]  # TEST case 1, dim 2
    assert rec.y.tolist() == [0, 1] * 6


def test_predefined_split_tests_on_the_test_file_and_validates_on_train_cases(tmp_path):
    root = _problem(tmp_path / "archive", n=20)
    dm = SignDataModule(TsDataset(str(root), "Toy"), split="predefined", cache_dir=str(tmp_path))
    rec = dm.prepare()
    assert (rec.partition[dm.split.test] == "test").all() and len(dm.split.test) == 20
    assert (rec.partition[dm.split.val] == "train").all() and len(dm.split.val) == 2
    assert np.bincount(rec.y[dm.split.val]).tolist() == [1, 1]  # stratified
    assert len(dm.split.train) + len(dm.split.val) == 20


def test_univariate_file_next_to_the_root(tmp_path):
    for split in ("TRAIN", "TEST"):
        cases = [_case([[i, i + 1, i + 2, i + 3]], CLASSES[i % 2]) for i in range(4)]
        _write(tmp_path / f"Uni_{split}.ts", _header(1, 4), cases)
    rec = TsDataset(str(tmp_path), "Uni").load(tmp_path / "cache")
    assert rec.x.shape == (8, 1, 4) and rec.x[3, 0].tolist() == [3.0, 4.0, 5.0, 6.0]


def test_variable_lengths_go_through_resize(tmp_path):
    for split in ("TRAIN", "TEST"):
        cases = [_case(_ramp(0, 3 + i, 2), CLASSES[i % 2]) for i in range(4)]  # 3..6 steps
        _write(tmp_path / f"Var_{split}.ts", _header(2, None), cases)
    with pytest.raises(DataError, match=r"Var_TRAIN\.ts, line \d+: series lengths vary \(3 to 6"):
        TsDataset(str(tmp_path), "Var").load(tmp_path / "cache")
    padded = TsDataset(str(tmp_path), "Var", length=6, resize="pad").load(tmp_path / "cache")
    assert padded.x[0, 1].tolist() == [10.0, 11.0, 12.0, 0.0, 0.0, 0.0]
    resampled = TsDataset(str(tmp_path), "Var", length=5).load(tmp_path / "cache")
    assert resampled.x[0, 0].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert resampled.x[3, 0].tolist() == [0.0, 1.25, 2.5, 3.75, 5.0]


def test_missing_values_are_an_error_by_default_and_interpolated_when_asked(tmp_path):
    header = _header(2, 5, missing=True)
    gappy = _case([[1, "?", 3, "?", "?"], ["?", 2, 2, 4, 6]], "Walking")
    for split in ("TRAIN", "TEST"):
        cases = [_case(_ramp(0, 5, 2), CLASSES[i % 2]) for i in range(4)]
        _write(tmp_path / f"Gap_{split}.ts", header, [*cases, gappy])
    line = len(header) + 5
    with pytest.raises(DataError) as err:
        TsDataset(str(tmp_path), "Gap").load(tmp_path / "cache")
    assert str(err.value).startswith(f"{tmp_path / 'Gap_TRAIN.ts'}, line {line}: dimension 0")
    assert "missing value ('?') at step 1" in str(err.value)
    assert "data.source.missing=interpolate" in str(err.value)
    rec = TsDataset(str(tmp_path), "Gap", missing="interpolate").load(tmp_path / "cache")
    assert rec.x[4].tolist() == [[1, 2, 3, 3, 3], [2, 2, 2, 4, 6]]  # inside: linear; ends: nearest


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("1,2,3,4,5:1,2,3,4,5:Running", "class label 'Running' is not one of"),
        ("1,2,3,4,5:Walking", r"1 dimension\(s\) before the class label, expected 2"),
        ("1,2,x,4,5:1,2,3,4,5:Walking", "dimension 0: not a number"),
        ("1,2,3,4,5:1,2,3,4:Walking", r"the dimensions have \[5, 4\] values"),
        ("1,2,3,4:1,2,3,4:Walking", "4 values, but the header says @equalLength true"),
        ("1,2,3,inf,5:1,2,3,4,5:Walking", "infinite value at step 3"),
        ("1,2,,4,5:1,2,3,4,5:Walking", "not a number"),
        ("just text", "no ':' before a class label"),
    ],
    ids=["label", "dims", "text", "ragged", "length", "inf", "empty", "no-colon"],
)
def test_malformed_line_names_the_file_and_line(tmp_path, line, problem):
    header = _header(2, 5)
    good = [_case(_ramp(0, 5, 2), CLASSES[i % 2]) for i in range(3)]
    path = _write(tmp_path / "Bad_TRAIN.ts", header, [*good, line, *good])
    with pytest.raises(DataError, match=problem) as err:
        read_ts(path)
    assert str(err.value).startswith(f"{path}, line {len(header) + 4}: ")


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (["@problemName X", "@data"], r"@data before a @classLabel"),
        (["@classLabel false", "@data"], "expected '@classLabel true <label>"),
        (["@classLabel true a", "@data"], r"declares \['a'\]; .* at least 2 distinct classes"),
        (["@classLabel true a b a", "@data"], "at least 2 distinct classes"),
        (["@timeStamps true", "@classLabel true a b", "@data"], "timestamped series"),
        (["@missing maybe", "@classLabel true a b", "@data"], "@missing 'maybe': expected true"),
        (["@dimensions two", "@classLabel true a b", "@data"], "expected a positive integer"),
        (["@classLabel true a b", "1,2:a"], "expected a @tag header line or @data"),
        (["@classLabel true a b"], "no @data line"),
        (["@classLabel true a b", "@data"], "no cases after @data"),
    ],
)
def test_bad_header_is_named(tmp_path, header, problem):
    path = tmp_path / "H_TRAIN.ts"
    path.write_text("\n".join(header) + "\n")
    with pytest.raises(DataError, match=problem) as err:
        read_ts(path)
    assert str(path) in str(err.value)


def test_a_class_missing_from_the_test_file_is_named(tmp_path):
    root = _problem(tmp_path, n=4)
    only_standing = [_case(_ramp(0, 5, 2), "Standing") for _ in range(3)]
    test_file = _write(root / "Toy" / "Toy_TEST.ts", _header(2, 5), only_standing)
    with pytest.raises(DataError, match=r"no recordings of class\(es\) \['Walking'\]") as err:
        TsDataset(str(root), "Toy").load(tmp_path / "cache")
    assert str(err.value).startswith(str(test_file))


def test_test_file_with_other_dimensions_is_refused(tmp_path):
    root = _problem(tmp_path, dims=2)
    cases = [_case(_ramp(0, 5, 3), CLASSES[i % 2]) for i in range(4)]
    _write(root / "Toy" / "Toy_TEST.ts", _header(3, 5), cases)
    with pytest.raises(DataError, match=r"Toy_TEST\.ts: 3 dimension\(s\), .*Toy_TRAIN\.ts has 2"):
        TsDataset(str(root), "Toy").load(tmp_path / "cache")


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (
            {"missing": "zero"},
            "data.source.missing='zero': expected one of ('error', 'interpolate')",
        ),
        ({"resize": "stretch"}, "data.source.resize='stretch'"),
        ({"length": 0}, "data.source.length=0"),
        ({"name": "Other"}, "data.source.name='Other': no Other_TRAIN.ts and Other_TEST.ts"),
        ({"root": "/nowhere/at/all"}, "data.source.root='/nowhere/at/all': no such data folder"),
    ],
)
def test_bad_settings_are_refused_when_constructed(tmp_path, settings, problem):
    root = _problem(tmp_path)
    with pytest.raises(DataError, match="^" + re.escape(problem)):
        TsDataset(**{"root": str(root), "name": "Toy", **settings})


def test_cache_follows_the_files(tmp_path):
    root = _problem(tmp_path, n=4)
    first = TsDataset(str(root), "Toy").load(tmp_path / "cache")
    cases = [_case(_ramp(7, 5, 2), CLASSES[i % 2]) for i in range(4)]
    _write(root / "Toy" / "Toy_TEST.ts", _header(2, 5), cases)
    second = TsDataset(str(root), "Toy").load(tmp_path / "cache")
    assert second.x[4, 0, 0] == 7.0 and first.fingerprint != second.fingerprint


def test_a_problem_with_five_training_cases_per_class_trains(tmp_path):
    """PickupGestureWiimoteZ's size: 10 classes, 5 training cases each."""
    classes = tuple(f"c{k}" for k in range(10))
    for split, offset in (("TRAIN", 0), ("TEST", 1000)):
        cases = [_case(_ramp(offset + 37 * i, 30, 1), classes[i % 10]) for i in range(50)]
        _write(tmp_path / f"Small_{split}.ts", _header(1, 30, classes), cases)
    source = {"_target_": "signdistill.data.ts.TsDataset", "root": str(tmp_path), "name": "Small"}
    result = run(make_cfg(tmp_path, "data=ts", "distill=none", source=source))
    assert 0 <= result["test_acc"] <= 1
    df = runs(tmp_path)
    assert df["status"].tolist() == ["FINISHED"]
