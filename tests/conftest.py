"""Shared fixtures."""

import os
from pathlib import Path

import pytest

# `make test` runs the tests side by side, one pytest-xdist worker per core: each worker (and the
# processes it starts) then trains on one torch thread, so that workers do not fight over cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)

SHARED_LIS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lis-emg-imu"


@pytest.fixture
def lis_root() -> Path:
    """The shared read-only copy of the LIS dataset (never downloaded by tests)."""
    if not (SHARED_LIS / "Dataset").is_dir():
        pytest.skip(f"no LIS copy at {SHARED_LIS}")
    return SHARED_LIS
