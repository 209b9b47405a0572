"""Knowledge distillation loss (Hinton et al., 2015).

``alpha`` weights the soft (teacher) term; ``1 - alpha`` weights the hard-label cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_term(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), averaged over the batch.

    The T^2 factor keeps the soft term's gradient scale independent of T.
    """
    t = temperature
    return (t * t) * F.kl_div(
        F.log_softmax(student / t, dim=-1),
        F.log_softmax(teacher / t, dim=-1),
        log_target=True,
        reduction="batchmean",
    )


def kd_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, targets)."""
    hard = F.cross_entropy(student, targets)
    if alpha == 0.0:
        return hard
    return alpha * soft_term(student, teacher, temperature) + (1.0 - alpha) * hard
