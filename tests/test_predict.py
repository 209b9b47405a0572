"""The predictor CLI: top-k output for each input format, clear errors with a non-zero exit."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from signdistill.checkpoints import load_model, save_model
from signdistill.data.lis import CHANNEL_GROUPS
from signdistill.export import export_onnx
from signdistill.models import Architecture, ConvPoolLSTM
from signdistill.predict import main

LIS_CHANNELS = [n for g in ("emg", "gyroscope") for n in CHANNEL_GROUPS[g]]


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "model.pt"
    model = ConvPoolLSTM(Architecture(len(LIS_CHANNELS), 3, (2, 4), (6, 6)))
    meta = {"classes": ["A", "B", "C"], "channels": LIS_CHANNELS, "length": 400}
    save_model(path, model, meta)
    return path


def _probabilities(out: str) -> dict[str, float]:
    return {line.split("\t")[0]: float(line.split("\t")[1]) for line in out.strip().splitlines()}


def test_lis_json(model_file, lis_root, capsys):
    recording = next((lis_root / "Dataset" / "A").glob("*.json"))
    assert main([str(model_file), str(recording), "-k", "2"]) == 0
    probs = _probabilities(capsys.readouterr().out)
    assert len(probs) == 2 and set(probs) <= {"A", "B", "C"}
    assert list(probs.values()) == sorted(probs.values(), reverse=True)


def test_onnx_export_predicts_like_the_weights_file(model_file, lis_root, tmp_path, capsys):
    model, meta = load_model(model_file)
    onnx_file = tmp_path / "model.onnx"
    export_onnx(
        model, onnx_file, torch.randn(2, len(LIS_CHANNELS), 400), {**meta, "min_length": 17}
    )
    recording = next((lis_root / "Dataset" / "B").glob("*.json"))
    assert main([str(model_file), str(recording)]) == 0
    from_pt = _probabilities(capsys.readouterr().out)
    assert main([str(onnx_file), str(recording)]) == 0
    from_onnx = _probabilities(capsys.readouterr().out)
    assert list(from_pt) == list(from_onnx)
    assert list(from_pt.values()) == pytest.approx(list(from_onnx.values()), abs=2e-3)


def test_csv_in_any_column_order_and_npy(model_file, tmp_path, capsys):
    values = np.random.default_rng(0).normal(size=(len(LIS_CHANNELS), 300))
    csv = tmp_path / "r.csv"
    pd.DataFrame(values.T[:, ::-1], columns=LIS_CHANNELS[::-1]).to_csv(csv, index=False)
    npy = tmp_path / "r.npy"
    np.save(npy, values)
    assert main([str(model_file), str(csv), "-k", "3"]) == 0
    from_csv = _probabilities(capsys.readouterr().out)
    assert main([str(model_file), str(npy), "-k", "3"]) == 0
    from_npy = _probabilities(capsys.readouterr().out)
    assert from_csv == from_npy  # same recording, same answer, whatever the column order
    assert sum(from_npy.values()) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros((3, 100))), "expects 11"),
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros((11, 8))), "too short"),
        (lambda p: p.with_suffix(".npy").write_bytes(b"garbage"), "not a readable .npy"),
        (lambda p: p.with_suffix(".csv").write_text("emg_1,acc_x\n1,2\n"), "missing channel"),
        (lambda p: p.with_suffix(".json").write_text("{"), "not a readable JSON"),
    ],
    ids=["channels", "short", "unreadable", "csv-channels", "json"],
)
def test_bad_recordings_exit_non_zero_with_a_clear_error(
    model_file, tmp_path, capsys, make, problem
):
    stem = tmp_path / "bad"
    make(stem)
    recording = next(tmp_path.glob("bad.*"))
    assert main([str(model_file), str(recording)]) == 2
    err = capsys.readouterr().err
    assert problem in err and str(recording) in err


def test_missing_model_is_an_error(tmp_path, lis_root, capsys):
    recording = next((lis_root / "Dataset" / "A").glob("*.json"))
    shutil.copy(recording, tmp_path / "r.json")
    assert main([str(tmp_path / "none.pt"), str(tmp_path / "r.json")]) == 2
    assert "no such model file" in capsys.readouterr().err
