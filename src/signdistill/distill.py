"""Knowledge distillation: the losses (vanilla KD, Hinton et al., 2015; decoupled KD, Zhao et al.,
2022) and the distiller that pairs a frozen teacher with one of them.

Each loss is one ``nn.Module`` chosen in YAML (``conf/distill/<name>.yaml``, ``_target_``): a new
KD loss is one class here plus one YAML file. ``alpha`` weights the *soft* (teacher) term and
``1 - alpha`` the hard-label cross-entropy (torchdistill's ``alpha`` weights the hard term: the
opposite). Targets are labels (N,) or class probabilities (N, K) from mixup.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import NonNegativeFloat, PositiveFloat
from torch import nn


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


def dkd_term(
    student: torch.Tensor,
    teacher: torch.Tensor,
    gt: torch.Tensor,
    temperature: float,
    beta: float,
) -> torch.Tensor:
    """T^2 * (TCKD + beta * NCKD), averaged over the batch (decoupled KD).

    Vanilla KD is TCKD + (1 - p_teacher(gt)) * NCKD: the non-target term, which carries the
    teacher's "dark knowledge", is suppressed exactly where the teacher is confident. DKD gives
    it a fixed weight ``beta`` instead. TCKD is the KL of the binary (target, rest)
    distributions, NCKD the KL among the non-target classes. Written here because no maintained
    package ships it.
    """
    t = temperature
    mask = F.one_hot(gt, student.shape[-1]).bool()
    p_s, p_t = F.softmax(student / t, dim=-1), F.softmax(teacher / t, dim=-1)
    b_s = torch.stack([p_s[mask], 1 - p_s[mask]], dim=-1).clamp_min(1e-12)
    b_t = torch.stack([p_t[mask], 1 - p_t[mask]], dim=-1).clamp_min(1e-12)
    tckd = (b_t * (b_t.log() - b_s.log())).sum(-1).mean()
    # a large negative logit removes the target class from the non-target distributions
    nckd = F.kl_div(
        F.log_softmax(student / t - 1e4 * mask, dim=-1),
        F.log_softmax(teacher / t - 1e4 * mask, dim=-1),
        log_target=True,
        reduction="batchmean",
    )
    return (t * t) * (tckd + beta * nckd)


class KDLoss(nn.Module):
    """Vanilla KD: ``alpha * soft_term + (1 - alpha) * CE(student, targets)``."""

    def __init__(self, temperature: PositiveFloat = 4.0, alpha: NonNegativeFloat = 0.5) -> None:
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha={alpha}: must be in [0, 1] (the weight of the soft term)")
        if not temperature > 0:
            raise ValueError(f"temperature={temperature}: must be > 0")
        self.temperature = temperature
        self.alpha = alpha

    def soft(
        self, student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """The teacher term, weighted by ``alpha``."""
        return soft_term(student, teacher, self.temperature)

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        hard = F.cross_entropy(student, targets)
        if self.alpha == 0.0:
            return hard
        return self.alpha * self.soft(student, teacher, targets) + (1.0 - self.alpha) * hard


class DKDLoss(KDLoss):
    """Decoupled KD: the soft term is ``T^2 * (TCKD + beta * NCKD)`` (:func:`dkd_term`).

    The target class of a mixed (soft) target is its larger component.
    """

    def __init__(
        self,
        temperature: PositiveFloat = 4.0,
        alpha: NonNegativeFloat = 0.5,
        beta: NonNegativeFloat = 8.0,
    ) -> None:
        super().__init__(temperature, alpha)
        if not beta >= 0:
            raise ValueError(f"beta={beta}: must be >= 0")
        self.beta = beta

    def soft(
        self, student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        gt = targets if targets.ndim == 1 else targets.argmax(-1)
        return dkd_term(student, teacher, gt, self.temperature, self.beta)


@dataclass
class Distiller:
    """What a student learns from: a frozen teacher, how its logits reach the loss, the loss.

    ``online``: the teacher runs on each (augmented, mixed) training batch, consistent teaching;
    otherwise its logits on the clean training set are computed once and served with each batch
    by the DataModule (the teacher is frozen, so they cannot change).
    """

    teacher: nn.Module
    loss: nn.Module
    online: bool

    def __post_init__(self) -> None:
        self.teacher.requires_grad_(False)
        self.teacher.eval()


@torch.no_grad()
def teacher_logits(teacher: nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """The frozen teacher's logits for every recording of ``x`` (in eval mode)."""
    teacher.eval()
    return torch.cat([teacher(x[i : i + batch]) for i in range(0, len(x), batch)])
