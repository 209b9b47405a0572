"""Where teachers live between runs: one file per (data, split, teacher config, seed).

A student run looks its teacher up here by key; the lock makes concurrent workers train a missing
teacher once and the others wait and load it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from torch import nn

from signdistill.data.cache import cache_key
from signdistill.data.recordings import DataError

TEACHER_FILE = "teacher.pt"


def teacher_key(teacher_cfg: Mapping[str, Any], data: Mapping[str, Any], seed: int) -> str:
    """What determines a teacher: its config (architecture and recipe), the data and split, seed."""
    return cache_key({"teacher": dict(teacher_cfg), "data": dict(data), "seed": seed})


def teacher_path(store: str | Path, key: str) -> Path:
    return Path(store) / key / TEACHER_FILE


def lock(store: str | Path, key: str) -> FileLock:
    """An inter-process lock on one teacher key."""
    Path(store).mkdir(parents=True, exist_ok=True)
    return FileLock(str(Path(store) / f"{key}.lock"))


def check_fits(
    meta: Mapping[str, Any], classes: list[str], channels: list[str], where: str
) -> None:
    """Refuse a teacher trained on other classes or channels than the current data."""
    for name, have, want in (
        ("classes", meta.get("classes"), classes),
        ("channels", meta.get("channels"), channels),
    ):
        if list(have or []) != list(want):
            raise DataError(
                f"{where}: teacher {name} do not match the data "
                f"(teacher has {len(have or [])}: {json.dumps((have or [])[:5])}..., "
                f"data has {len(want)}: {json.dumps(want[:5])}...)"
            )


class TeacherEnsemble(nn.Module):
    """Several teachers as one: the mean of the members' logits (each standardizes its input)."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)
