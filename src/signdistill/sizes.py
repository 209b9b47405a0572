"""How big a model is: parameters, fp32 bytes and the bytes of its weights file."""

from __future__ import annotations

from torch import nn

from signdistill.models import count_parameters


def size_metrics(model: nn.Module, file_bytes: int, reference_params: int) -> dict[str, float]:
    """``params``, ``size_fp32_bytes`` (params x 4), ``size_file_bytes`` and ``compression_ratio``.

    The compression ratio is the configured teacher's parameter count over this model's (1.0 for
    the teacher itself), known from the architectures alone: no teacher is trained to compute it.
    """
    params = count_parameters(model)
    return {
        "params": float(params),
        "size_fp32_bytes": float(params * 4),
        "size_file_bytes": float(file_bytes),
        "compression_ratio": reference_params / params,
    }
