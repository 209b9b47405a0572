"""Model files that load with ``torch.load(weights_only=True)``: tensors plus plain metadata.

A pickled module would execute code on load; these files hold only a state dict, the architecture
as a dict and JSON-able metadata (classes, channels, run ids).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from signdistill.data.cache import atomic_write_bytes
from signdistill.models import Architecture, ConvPoolLSTM


def save_model(path: Path, model: ConvPoolLSTM, meta: dict[str, Any]) -> int:
    """Write ``model`` and ``meta`` atomically; returns the file size in bytes."""
    payload = {"arch": model.arch.as_dict(), "state_dict": model.state_dict(), "meta": meta}
    atomic_write_bytes(path, lambda f: torch.save(payload, f))
    return path.stat().st_size


def load_model(path: Path) -> tuple[ConvPoolLSTM, dict[str, Any]]:
    """Rebuild the model saved by :func:`save_model` (in eval mode) and its metadata."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = ConvPoolLSTM(Architecture.from_dict(payload["arch"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload["meta"]
