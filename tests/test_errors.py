"""Every bad input a user can make gives one short message naming the key or file, no traceback,
and exit code 2, through the real entry points ``src/train.py`` and ``src/predict.py``."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
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
    paths |= data_folders(root)
    paths |= read_only_folders(root)
    return paths


def data_folders(root: Path) -> dict[str, Path]:
    """Recording folders of two classes, each with one flaw (or none: ``classes``)."""
    paths = {name: root / name for name in ("classes", "looped", "indexed", "lis")}
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(30, 2)), columns=["emg", "acc"])
    for name in ("classes", "looped", "indexed"):
        for label in ("hello", "thanks"):
            (paths[name] / label).mkdir(parents=True)
            for i in range(3):
                frame.to_csv(paths[name] / label / f"r{i}.csv", index=name == "indexed")
    (paths["looped"] / "thanks" / "loop.csv").symlink_to("loop.csv")  # itself
    emg = np.arange(50 * 8).reshape(50, 8).tolist()
    for label in ("A", "B"):
        (paths["lis"] / "Dataset" / label).mkdir(parents=True)
        for i in range(3):
            doc = {"timestamp": "26/06/20/22:28:12", "emg": {"data": emg}}
            if (label, i) == ("B", 1):
                doc["emg"]["data"] = [*emg[:7], [*emg[7][:3], "12", *emg[7][4:]], *emg[8:]]
            (paths["lis"] / "Dataset" / label / f"r{i}.json").write_text(json.dumps(doc))
    return paths


def read_only_folders(root: Path) -> dict[str, Path]:
    """A run root whose ``mlruns/`` is read-only, and a read-only (empty) cache folder."""
    paths = {"read_only_root": root / "read_only_root", "read_only_cache": root / "ro_cache"}
    (paths["read_only_root"] / "mlruns").mkdir(parents=True)
    paths["read_only_cache"].mkdir()
    for folder in (paths["read_only_root"] / "mlruns", paths["read_only_cache"]):
        folder.chmod(0o555)
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
    "data=folder": "data.source.root",  # a mandatory key left unset (???)
    "train.optimizer.lr=-1": "train.optimizer.lr",  # torch's own check, before any data
    "trainer.accelerator=gpu": "trainer.accelerator",  # Lightning's own checks, before any data
    "trainer.devices=0": "trainer.devices",
    "+trainer.max_epochs=0": ("trainer.max_epochs", "train.max_epochs"),  # the recipe's key
    "model.width=0.001": "model.width",  # would round every layer up to one unit
    "-m +sweeps=student_pareto distill.temperature=interval(10.0,1.0)": (
        "distill.temperature=interval(10.0,1.0): an empty interval"
    ),
    "-m +sweeps=student_pareto model.width=tag(log,interval(0.0,4.0))": (
        "model.width=tag(log,interval(0.0,4.0)): a log scale needs both ends above 0"
    ),
    "paths.root={read_only_root}": ("logger.tracking_uri", "read_only_root/mlruns"),
    "paths.cache={read_only_cache}": "ro_cache",  # a cache miss there
    "data=folder data.source.root={looped} data.source.length=30": "loop.csv",
    "data=folder data.source.root={classes} data.split=subject": ("data.split", "subject_pattern"),
    "data=folder data.source.root={indexed} data.source.length=30": ("Unnamed: 0", "r0.csv"),
    "data=lis data.source.root={lis} data.source.length=50 data.source.channels=[emg]": "r1.json",
}


def run(command: list[str], cwd: Path, read_only: bool = False) -> subprocess.CompletedProcess:
    """Run ``command``; ``read_only``: so that a read-only folder is read-only to it, even as root
    (which writes anywhere otherwise): without the capabilities that bypass file permissions."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    env.pop("HYDRA_FULL_ERROR", None)
    if read_only and os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a folder read-only")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def assert_clear_error(done: subprocess.CompletedProcess, named: str | tuple[str, ...]) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-2000:]
    for name in (named,) if isinstance(named, str) else named:
        assert name in done.stderr, done.stderr
    assert "Traceback" not in output, output[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) <= 15, done.stderr  # one message (Hydra's lists the options), not a dump


def assert_no_run_left(root: Path) -> None:
    """An input error leaves no MLflow run (RUNNING or FAILED) and no study behind."""
    assert not (root / "mlruns" / "optuna.db").exists()
    database = root / "mlruns" / "mlflow.db"
    if database.exists():
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{database}")
        experiments = [e.experiment_id for e in client.search_experiments()]
        assert not client.search_runs(experiments)


# One case per source of error stays in the fast suite (the config check, Hydra's own, a model
# file, a data file, a sweep's search space); each case is a `src/train.py` process of several
# seconds, so the others run with the end-to-end tests (-m slow).
FAST_TRAIN_CASES = {
    "seed=abc",
    "model=nope",
    "teacher.checkpoint={evil}",
    "data=folder data.source.root={one_class}",
    "-m +sweeps=student_pareto distill.temperature=interval(10.0,1.0)",
}
FAST_PREDICT_CASES = {"{evil} {recording}", "{good} {recording} -k 0"}


def cases(all_cases: dict, fast: set[str]) -> list:
    """``all_cases``' keys as parameters, those not in ``fast`` behind the slow marker."""
    return [pytest.param(c, marks=[] if c in fast else pytest.mark.slow) for c in all_cases]


@pytest.mark.parametrize("case", cases(TRAIN_CASES, FAST_TRAIN_CASES))
def test_bad_train_input_is_one_clear_message_and_exit_2(tmp_path, case):
    if "accelerator=gpu" in case and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    paths = files(tmp_path / "files")
    overrides = case.format(**paths, root=tmp_path, port=closed_port()).split()
    command = train_command(tmp_path, *(o for o in overrides if o != "-m"))
    if "-m" in overrides:  # a sweep: Hydra's flag before the overrides
        command.insert(2, "-m")
    done = run(command, tmp_path, read_only="{read_only" in case)
    assert_clear_error(done, TRAIN_CASES[case])
    assert not (tmp_path / "files" / "pwned").exists()  # the malicious pickle never ran
    assert_no_run_left(tmp_path)


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


@pytest.mark.parametrize("case", cases(PREDICT_CASES, FAST_PREDICT_CASES))
def test_bad_predict_input_is_one_clear_message_and_exit_2(tmp_path, case):
    paths = files(tmp_path / "files")
    args = case.format(**paths, good=tmp_path / "files" / "good.pt", root=tmp_path).split()
    command = [sys.executable, str(ROOT / "src" / "predict.py"), *args]
    done = run([*command, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"], tmp_path)
    assert_clear_error(done, PREDICT_CASES[case])
    assert not (tmp_path / "files" / "pwned").exists()


@pytest.mark.parametrize("bad", ["seed=abc", pytest.param("model=nope", marks=pytest.mark.slow)])
def test_debug_shows_the_traceback_and_still_exits_2(tmp_path, bad):
    done = run(train_command(tmp_path, bad, "--debug"), tmp_path)
    assert done.returncode == 2 and "Traceback" in done.stderr, done.stderr[-2000:]


@pytest.mark.slow  # trains a teacher, then runs again
def test_a_corrupt_stored_teacher_is_named_with_what_to_do(tmp_path):
    assert run(train_command(tmp_path, "+recipe=kd"), tmp_path).returncode == 0  # stores one
    (stored,) = (tmp_path / "mlruns" / "teachers").glob("*/teacher.pt")
    stored.write_bytes(stored.read_bytes()[:1000])
    done = run(train_command(tmp_path, "+recipe=kd"), tmp_path)
    assert_clear_error(done, str(stored))
    assert f"rm -r {stored.parent}" in done.stderr
