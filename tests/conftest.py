"""Shared fixtures."""

from pathlib import Path

import pytest

SHARED_LIS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lis-emg-imu"


@pytest.fixture
def lis_root() -> Path:
    """The shared read-only copy of the LIS dataset (never downloaded by tests)."""
    if not (SHARED_LIS / "Dataset").is_dir():
        pytest.skip(f"no LIS copy at {SHARED_LIS}")
    return SHARED_LIS
