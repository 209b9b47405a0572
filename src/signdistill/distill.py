"""Knowledge distillation losses: vanilla KD (Hinton et al., 2015) and decoupled KD (DKD,
Zhao et al., 2022).

``alpha`` weights the soft (teacher) term; ``1 - alpha`` weights the hard-label cross-entropy.
Targets are labels (N,) or class probabilities (N, K) from mixup.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOSSES = ("kd", "dkd")


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


@dataclass(frozen=True)
class Distillation:
    """A KD loss: ``alpha`` weights the soft (teacher) term, ``1 - alpha`` the hard targets.

    ``loss="dkd"`` replaces the soft term with decoupled KD, its non-target part weighted by
    ``beta``; the target class of a mixed (soft) target is its larger component.
    """

    temperature: float = 4.0
    alpha: float = 0.5
    loss: str = "kd"
    beta: float = 8.0

    def __call__(
        self, student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        hard = F.cross_entropy(student, targets)
        if self.alpha == 0.0:
            return hard
        if self.loss == "dkd":
            gt = targets if targets.ndim == 1 else targets.argmax(-1)
            soft = dkd_term(student, teacher, gt, self.temperature, self.beta)
        else:
            soft = soft_term(student, teacher, self.temperature)
        return self.alpha * soft + (1.0 - self.alpha) * hard
