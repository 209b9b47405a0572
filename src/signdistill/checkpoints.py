"""Model files that load with ``torch.load(weights_only=True)``: tensors plus plain metadata.

A pickled module would execute code on load; these files hold only a state dict, the architecture
as a dict and JSON-able metadata (classes, channels, run ids).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from signdistill.errors import ModelFileError
from signdistill.families import Network, UnknownFamilyError, architecture_from_dict, build_network
from signdistill.files import atomic_write_bytes


def save_model(path: Path, model: Network, meta: dict[str, Any]) -> int:
    """Write ``model`` and ``meta`` atomically; returns the file size in bytes."""
    payload = {"arch": model.arch.as_dict(), "state_dict": model.state_dict(), "meta": meta}
    atomic_write_bytes(path, lambda f: torch.save(payload, f))
    return path.stat().st_size


def load_model(path: Path) -> tuple[Network, dict[str, Any]]:
    """Rebuild the model saved by :func:`save_model` (in eval mode) and its metadata.

    Anything else raises ModelFileError naming the file: a truncated or damaged file, a pickle
    that would run code (refused by ``weights_only``), another program's checkpoint, or a model
    file written before the layers were named, or a family of network this version does not have.
    The stored architecture's ``family`` key says which network to build (none: the Conv-LSTM).
    """
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = "it holds code, not only weights" if "weights_only" in str(e) else "damaged"
        raise ModelFileError(f"{path}: refused to load ({reason})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise ModelFileError(f"{path}: not a readable model file ({_first_line(e)})") from None
    if not (isinstance(payload, dict) and {"arch", "state_dict", "meta"} <= payload.keys()):
        raise ModelFileError(f"{path}: not a signdistill model file (no arch, state_dict, meta)")
    try:
        model = build_network(architecture_from_dict(payload["arch"]))
        model.load_state_dict(payload["state_dict"])
    except UnknownFamilyError as e:
        raise ModelFileError(f"{path}: {e}") from None
    except (TypeError, KeyError, RuntimeError) as e:
        raise ModelFileError(
            f"{path}: its weights do not fit its architecture ({_first_line(e)}); a file written "
            "by an older signdistill (layers in `features.*`) must be trained again"
        ) from None
    return model.eval(), payload["meta"]


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
