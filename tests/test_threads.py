"""The default thread count follows the machine's load: all cores when quiet, the free ones
beside other CPU-bound processes, never fewer than one."""

from __future__ import annotations

import pytest

from signdistill import threads
from signdistill.config import validate
from signdistill.errors import ConfigError

from pipeline_helpers import make_cfg


@pytest.mark.parametrize(("load", "expected"), [(0.1, 2), (1.2, 1), (3.9, 1)])
def test_auto_takes_the_cores_nothing_else_is_using(monkeypatch, load, expected):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, 0.0, 0.0))
    assert threads.choose("auto") == expected


def test_a_number_is_kept_and_null_leaves_torch_its_default():
    assert threads.choose(3) == 3
    assert threads.choose(None) is None


@pytest.mark.parametrize("bad", ["threads=0", "threads=many"])
def test_a_thread_count_that_is_not_one_is_refused(tmp_path, bad):
    with pytest.raises(ConfigError, match=r"^threads\b"):
        validate(make_cfg(tmp_path, bad))
