"""How big a model is: parameters, fp32 bytes and the bytes of the files a device would load."""

from __future__ import annotations

from torch import nn

from signdistill.models import count_parameters


def size_metrics(model: nn.Module, file_bytes: int, teacher_file_bytes: int | None) -> dict:
    """``params``, ``size_fp32_bytes`` (params x 4), ``size_file_bytes`` and ``compression_ratio``.

    The compression ratio is the teacher's file size over this model's (1.0 for a teacher).
    """
    params = count_parameters(model)
    reference = teacher_file_bytes or file_bytes
    return {
        "params": float(params),
        "size_fp32_bytes": float(params * 4),
        "size_file_bytes": float(file_bytes),
        "compression_ratio": reference / file_bytes,
    }
