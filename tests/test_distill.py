"""The KD losses: their limits, soft terms, temperature scaling and the DKD decomposition."""

import pytest
import torch
import torch.nn.functional as F

from signdistill.distill import DKDLoss, KDLoss, dkd_term, soft_term


@pytest.fixture
def logits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    student = torch.randn(16, 10, generator=g)
    teacher = torch.randn(16, 10, generator=g) * 3
    targets = torch.randint(0, 10, (16,), generator=g)
    return student, teacher, targets


def test_alpha_zero_is_cross_entropy(logits):
    s, t, y = logits
    assert torch.allclose(KDLoss(4.0, alpha=0.0)(s, t, y), F.cross_entropy(s, y))


def test_alpha_one_is_scaled_kl(logits):
    s, t, y = logits
    temperature = 3.0
    p_t = F.softmax(t / temperature, dim=-1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / temperature, dim=-1))).sum(-1).mean()
    expected = temperature**2 * kl
    assert torch.allclose(KDLoss(temperature, alpha=1.0)(s, t, y), expected, atol=1e-6)


def test_mixture_weights_the_soft_term_by_alpha(logits):
    s, t, y = logits
    mixed = KDLoss(2.0, alpha=0.3)(s, t, y)
    assert torch.allclose(mixed, 0.3 * soft_term(s, t, 2.0) + 0.7 * F.cross_entropy(s, y))


def test_identical_logits_have_zero_soft_term(logits):
    s, _, _ = logits
    assert soft_term(s, s.clone(), 5.0).abs().item() < 1e-6


def test_t_squared_keeps_gradient_scale_independent_of_temperature(logits):
    s, t, _ = logits
    s, t = s * 0.1, t * 0.1  # the high-temperature regime where the T^2 argument holds

    def grad_norm(temperature: float) -> float:
        x = s.clone().requires_grad_(True)
        soft_term(x, t, temperature).backward()
        return x.grad.norm().item()

    ratio = grad_norm(20.0) / grad_norm(10.0)
    assert ratio == pytest.approx(1.0, rel=0.05)  # without T^2 it would be 1/4


@pytest.mark.parametrize("loss", [KDLoss, DKDLoss])
def test_mixup_targets_give_the_weighted_cross_entropy(logits, loss):
    s, t, y = logits
    other = y.roll(1)
    lam = 0.7
    probs = lam * F.one_hot(y, 10).float() + (1 - lam) * F.one_hot(other, 10).float()
    hard = lam * F.cross_entropy(s, y) + (1 - lam) * F.cross_entropy(s, other)
    assert torch.allclose(loss(4.0, alpha=0.0)(s, t, probs), hard, atol=1e-6)


def test_vanilla_kd_is_dkd_with_beta_one_minus_teacher_target_probability(logits):
    # KD = TCKD + (1 - p_t(gt)) NCKD (Zhao et al., 2022, eq. 7), one recording at a time
    s, t, y = logits
    temperature = 2.0
    for i in range(4):
        si, ti, yi = s[i : i + 1], t[i : i + 1], y[i : i + 1]
        beta = 1 - F.softmax(ti / temperature, dim=-1)[0, yi].item()
        dkd = dkd_term(si, ti, yi, temperature, beta)
        assert torch.allclose(dkd, soft_term(si, ti, temperature), atol=1e-5)


def test_dkd_is_zero_for_identical_logits_and_uses_the_dominant_mixed_class(logits):
    s, t, y = logits
    assert dkd_term(s, s.clone(), y, 4.0, 8.0).abs().item() < 1e-6
    probs = 0.6 * F.one_hot(y, 10).float() + 0.4 * F.one_hot(y.roll(1), 10).float()
    dkd = DKDLoss(4.0, alpha=1.0, beta=8.0)
    assert torch.allclose(dkd(s, t, probs), dkd(s, t, y))
