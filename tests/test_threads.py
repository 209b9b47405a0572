"""The default thread count follows the machine's load: all cores when quiet, the free ones
beside other CPU-bound processes, never fewer than one."""

from __future__ import annotations

import os

import pytest

from signdistill import threads
from signdistill.config import validate
from signdistill.errors import ConfigError

from pipeline_helpers import make_cfg


@pytest.mark.parametrize(("idle", "expected"), [(0.97, 2), (0.45, 1), (0.02, 1)])
def test_auto_takes_the_cores_nothing_else_is_using(tmp_path, monkeypatch, idle, expected):
    """``idle``: the fraction of CPU time the machine spent idle while the run looked."""
    stat = tmp_path / "stat"
    monkeypatch.setattr(threads, "STAT", stat)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    ticks = iter([(0, 0), (round(1000 * (1 - idle)), round(1000 * idle))])

    def sample() -> list[int]:
        busy, rest = next(ticks)
        return [busy, 0, 0, rest, 0, 0, 0]

    monkeypatch.setattr(threads, "_cpu_times", sample)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    stat.write_text("cpu 0 0 0 0 0 0 0\n")
    assert threads.choose("auto") == expected


def test_without_proc_stat_the_load_average_decides(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "STAT", tmp_path / "missing")
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.2, 0.0, 0.0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.choose("auto") == 1


def test_auto_leaves_an_explicit_omp_num_threads_to_torch(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.choose("auto") is None


def test_this_machines_free_cores_are_between_one_and_its_cores():
    assert 1 <= threads.free_cores(0.05) <= (os.cpu_count() or 1)


def test_a_number_is_kept_and_null_leaves_torch_its_default():
    assert threads.choose(3) == 3
    assert threads.choose(None) is None


@pytest.mark.parametrize("bad", ["threads=0", "threads=many"])
def test_a_thread_count_that_is_not_one_is_refused(tmp_path, bad):
    with pytest.raises(ConfigError, match=r"^threads\b"):
        validate(make_cfg(tmp_path, bad))
