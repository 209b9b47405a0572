"""Every bad input a user can make gives one short message naming the key or file, no traceback,
and exit code 2, through the real entry points ``src/train.py`` and ``src/predict.py``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from signdistill.checkpoints import save_model
from signdistill.models import Architecture, ConvPoolLSTM

from pipeline_helpers import ROOT, train_command


class Evil:
    """A pickle that runs a command when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def files(root: Path) -> dict[str, Path]:
    """Damaged, foreign and malicious model files, and a folder of a single class."""
    root.mkdir(parents=True, exist_ok=True)
    good = root / "good.pt"
    save_model(
        good, ConvPoolLSTM(Architecture(7, 3)), {"classes": ["a"] * 3, "channels": ["c"] * 7}
    )
    paths = {
        "truncated": root / "truncated.pt",
        "foreign": root / "foreign.pt",
        "evil": root / "evil.pt",
        "onnx": root / "broken.onnx",
        "one_class": root / "one_class",
        "recording": root / "rec.npy",
    }
    paths["truncated"].write_bytes(good.read_bytes()[:2000])
    torch.save(ConvPoolLSTM(Architecture(7, 3)).state_dict(), paths["foreign"])
    torch.save(Evil(root / "pwned"), paths["evil"])
    paths["onnx"].write_bytes(b"\x08\x07not an onnx graph")
    (paths["one_class"] / "hello").mkdir(parents=True)
    for i in range(4):
        np.save(paths["one_class"] / "hello" / f"r{i}.npy", np.zeros((3, 50), np.float32))
    np.save(paths["recording"], np.zeros((7, 50), np.float32))
    return paths


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TRAIN_CASES = {  # overrides -> what the message must name
    "seed=abc": "seed",
    "seed=1.5": "seed",
    "+typo=1": "typo",
    "data.batch_size=abc": "data.batch_size",
    "data.batch_size=1": "data.batch_size",
    "prune=slim prune.amount=half": "prune.amount",
    "prune=slim prune.scope=globl": "prune.scope",
    "export.deploy=int9": "export.deploy",
    "export.latency_runs=-5": "export.latency_runs",
    "distill.loss=kdd": "distill.loss",  # Hydra's own message: no such key
    "+distill.loss=kdd": "distill.loss",
    "model=nope": "model/nope",  # Hydra's own message: no such config
    "+model.typo=1": "model.typo",
    "teacher.checkpoint={truncated}": "truncated.pt",
    "teacher.checkpoint={foreign}": "foreign.pt",
    "teacher.checkpoint={evil}": "evil.pt",
    "teacher.checkpoint={root}/missing.pt": "missing.pt",
    "data=folder data.source.root={one_class}": "one_class",
    "data=folder data.source.root={root}/nowhere": "nowhere",
    "data=lis data.source.root={root}/nowhere": "nowhere",
    "logger.tracking_uri=http://127.0.0.1:{port}": "logger.tracking_uri",
}


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def assert_clear_error(done: subprocess.CompletedProcess, named: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-2000:]
    assert named in done.stderr, done.stderr
    assert "Traceback" not in output, output[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) <= 15, done.stderr  # one message (Hydra's lists the options), not a dump


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_bad_train_input_is_one_clear_message_and_exit_2(tmp_path, case):
    paths = files(tmp_path / "files")
    overrides = case.format(**paths, root=tmp_path, port=closed_port()).split()
    done = run(train_command(tmp_path, *overrides), tmp_path)
    assert_clear_error(done, TRAIN_CASES[case])
    assert not (tmp_path / "files" / "pwned").exists()  # the malicious pickle never ran


PREDICT_CASES = {
    "{truncated} {recording}": "truncated.pt",
    "{evil} {recording}": "evil.pt",
    "{foreign} {recording}": "foreign.pt",
    "{onnx} {recording}": "broken.onnx",
    "runs:/0123456789abcdef {recording}": "runs:/0123456789abcdef",
    "{root}/missing.pt {recording}": "missing.pt",
    "{good} {recording} -k 0": "-k",
    "{good} {recording} -k -2": "-k",
}


@pytest.mark.parametrize("case", list(PREDICT_CASES))
def test_bad_predict_input_is_one_clear_message_and_exit_2(tmp_path, case):
    paths = files(tmp_path / "files")
    args = case.format(**paths, good=tmp_path / "files" / "good.pt", root=tmp_path).split()
    command = [sys.executable, str(ROOT / "src" / "predict.py"), *args]
    done = run([*command, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"], tmp_path)
    assert_clear_error(done, PREDICT_CASES[case])
    assert not (tmp_path / "files" / "pwned").exists()


def test_debug_shows_the_traceback(tmp_path):
    done = run(train_command(tmp_path, "seed=abc", "--debug"), tmp_path)
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_a_corrupt_stored_teacher_is_named_with_what_to_do(tmp_path):
    assert run(train_command(tmp_path, "+recipe=kd"), tmp_path).returncode == 0  # stores one
    (stored,) = (tmp_path / "mlruns" / "teachers").glob("*/teacher.pt")
    stored.write_bytes(stored.read_bytes()[:1000])
    done = run(train_command(tmp_path, "+recipe=kd"), tmp_path)
    assert_clear_error(done, str(stored))
    assert f"rm -r {stored.parent}" in done.stderr
