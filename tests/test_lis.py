"""The LIS loader on the shared copy, its cache, its download path and its bad-input errors."""

import json
import shutil
import zipfile
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from signdistill.data import lis
from signdistill.data.lis import LisDataset
from signdistill.errors import DataError


def test_full_dataset_shape(lis_root, tmp_path):
    rec = LisDataset(str(lis_root)).load(tmp_path)
    assert rec.x.shape == (780, 18, 400) and rec.x.dtype == np.float32
    assert rec.classes == [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    assert np.bincount(rec.y).tolist() == [30] * 26
    assert rec.channels[:2] == ["emg_1", "emg_2"] and rec.channels[-1] == "quat_z"
    assert sorted(set(rec.groups)) == ["2020-06-26", "2020-06-27", "2020-07-09"]


def test_channel_groups_are_selectable_and_cached(lis_root, tmp_path):
    emg = LisDataset(str(lis_root), channels=["emg"]).load(tmp_path)
    assert emg.x.shape == (780, 8, 400)
    both = LisDataset(str(lis_root), channels=["gyroscope", "emg"]).load(tmp_path)
    assert both.channels[:3] == ["gyro_x", "gyro_y", "gyro_z"]
    assert np.array_equal(both.x[:, 3:], emg.x)
    again = LisDataset(str(lis_root), channels=["emg"]).load(tmp_path)
    assert np.array_equal(again.x, emg.x)
    assert len(list(tmp_path.glob("lis-*.npz"))) == 2


def test_unknown_channel_group_lists_the_valid_ones():
    with pytest.raises(DataError, match="orientation"):
        LisDataset(None, channels=["emg", "magnetometer"])
    with pytest.raises(DataError, match=r"^data\.source\.sha256='abc': expected 64"):
        LisDataset(None, sha256="abc")


@pytest.fixture
def small_copy(lis_root, tmp_path) -> Path:
    """Three letters x 3 recordings of the real data, to be damaged by a test."""
    root = tmp_path / "lis"
    for letter in "ABC":
        (root / "Dataset" / letter).mkdir(parents=True)
        for f in sorted((lis_root / "Dataset" / letter).glob("*.json"))[:3]:
            shutil.copy(f, root / "Dataset" / letter / f.name)
    return root


def _victim(root: Path) -> Path:
    return sorted((root / "Dataset" / "B").glob("*.json"))[0]


def _edit(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda p: p.write_text(p.read_text()[:500]), "not a readable JSON"),
        (lambda p: _edit(p, lambda d: d["emg"]["data"][5].__setitem__(2, float("nan"))), "NaN"),
        (
            lambda p: _edit(
                p, lambda d: d["emg"].__setitem__("data", [r[:7] for r in d["emg"]["data"]])
            ),
            "expected",
        ),
        (
            lambda p: _edit(p, lambda d: d["imu"].__setitem__("data", d["imu"]["data"][:100])),
            "fewer than 400",
        ),
        (lambda p: _edit(p, lambda d: d.pop("imu")), "not a LIS recording"),
        (
            lambda p: _edit(p, lambda d: d["imu"]["data"][7].__setitem__("gyroscope", [1, 2])),
            r"gyroscope: sample 7 is \[1, 2\], expected 3",
        ),
        (lambda p: _edit(p, lambda d: d.__setitem__("timestamp", "today")), "timestamp 'today'"),
        (
            lambda p: _edit(p, lambda d: d["emg"]["data"][5].__setitem__(2, "12")),
            r"emg\.data: sample 5, value 2 is '12' \(str\), expected a number",
        ),
    ],
    ids=[
        "truncated",
        "nan",
        "channels",
        "short",
        "missing-key",
        "ragged-imu",
        "timestamp",
        "string",
    ],
)
def test_bad_file_names_the_file_and_leaves_no_cache(small_copy, tmp_path, damage, problem):
    victim = _victim(small_copy)
    damage(victim)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=problem) as err:
        LisDataset(str(small_copy)).load(cache)
    assert str(victim) in str(err.value)
    assert not list(cache.glob("*.npz")) and not list(cache.glob(".*tmp"))


def test_empty_and_too_small_classes(small_copy, tmp_path):
    for f in (small_copy / "Dataset" / "C").glob("*.json"):
        f.unlink()
    with pytest.raises(DataError, match="empty class folder"):
        LisDataset(str(small_copy)).load(tmp_path)
    shutil.rmtree(small_copy / "Dataset" / "C")
    next((small_copy / "Dataset" / "B").glob("*.json")).unlink()
    with pytest.raises(DataError, match=r"B: 2 recording\(s\)"):
        LisDataset(str(small_copy)).load(tmp_path)


def _archive(lis_root: Path, path: Path, letters: int) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for letter_dir in sorted((lis_root / "Dataset").iterdir())[:letters]:
            for f in sorted(letter_dir.glob("*.json"))[:3]:
                z.write(f, f"repo-86d59a1/Dataset/{letter_dir.name}/{f.name}")


def test_missing_root_downloads_verifies_and_extracts_once(lis_root, tmp_path, monkeypatch):
    archive = tmp_path / "archive.zip"
    _archive(lis_root, archive, letters=26)
    calls = []

    def fake_fetch(url, path):  # tests never touch the network
        calls.append(url)
        shutil.copy(archive, path)

    monkeypatch.setattr(lis, "fetch", fake_fetch)
    cache = tmp_path / "cache"
    rec = LisDataset(None, channels=["emg"]).load(cache)
    assert rec.x.shape == (78, 8, 400) and calls == [lis.ARCHIVE_URL]
    LisDataset(None, channels=["gyroscope"]).load(cache)
    assert len(calls) == 1  # extracted once, reused


def test_an_explicit_root_that_does_not_exist_is_an_error_not_a_download(tmp_path, monkeypatch):
    monkeypatch.setattr(lis, "fetch", lambda url, path: pytest.fail("downloaded"))
    absent = tmp_path / "absent"
    with pytest.raises(DataError, match=r"^data\.source\.root='.*absent': no such folder") as err:
        LisDataset(str(absent))
    assert "null to download" in str(err.value)
    copy = tmp_path / "copy"
    copy.mkdir()
    source = LisDataset(str(copy))  # exists when constructed, removed before loading
    copy.rmdir()
    with pytest.raises(DataError, match="no such folder"):
        source.load(tmp_path / "cache")


def test_channel_group_literal_lists_every_group():
    assert list(get_args(lis.ChannelGroup)) == list(lis.CHANNEL_GROUPS)


def test_download_streams_a_file_url_and_reports_failures(lis_root, tmp_path, capsys):
    archive = tmp_path / "archive.zip"
    _archive(lis_root, archive, letters=26)
    cache = tmp_path / "cache"
    rec = LisDataset(None, channels=["orientation"], url=archive.as_uri()).load(cache)
    assert rec.x.shape == (78, 4, 400)
    assert str(cache) in capsys.readouterr().out  # the user is told where the copy went
    missing = (tmp_path / "missing.zip").as_uri()
    with pytest.raises(DataError, match=r"download failed.*SIGNDISTILL_LIS_ROOT"):
        LisDataset(None, url=missing).load(tmp_path / "other")


def test_a_bad_download_is_refused_and_leaves_nothing(lis_root, tmp_path, monkeypatch):
    archive = tmp_path / "archive.zip"
    _archive(lis_root, archive, letters=3)
    monkeypatch.setattr(lis, "fetch", lambda url, path: shutil.copy(archive, path))
    with pytest.raises(DataError, match="26 letter folders"):
        LisDataset(None).load(tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())
    with pytest.raises(DataError, match="sha256"):
        LisDataset(None, sha256="0" * 64).load(tmp_path / "cache")


def test_parsed_and_cached_loads_have_the_same_layout(small_copy, tmp_path):
    """Training must not depend on whether this run parsed the JSON or hit the cache."""
    parsed = LisDataset(str(small_copy)).load(tmp_path / "cache")
    cached = LisDataset(str(small_copy)).load(tmp_path / "cache")
    assert np.array_equal(parsed.x, cached.x)
    assert parsed.x.flags.c_contiguous and cached.x.flags.c_contiguous
