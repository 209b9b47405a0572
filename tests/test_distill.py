"""The KD loss: its limits, its soft term and its temperature scaling."""

import pytest
import torch
import torch.nn.functional as F

from signdistill.distill import kd_loss, soft_term


@pytest.fixture
def logits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    student = torch.randn(16, 10, generator=g)
    teacher = torch.randn(16, 10, generator=g) * 3
    targets = torch.randint(0, 10, (16,), generator=g)
    return student, teacher, targets


def test_alpha_zero_is_cross_entropy(logits):
    s, t, y = logits
    assert torch.allclose(kd_loss(s, t, y, temperature=4.0, alpha=0.0), F.cross_entropy(s, y))


def test_alpha_one_is_scaled_kl(logits):
    s, t, y = logits
    temperature = 3.0
    p_t = F.softmax(t / temperature, dim=-1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / temperature, dim=-1))).sum(-1).mean()
    expected = temperature**2 * kl
    assert torch.allclose(kd_loss(s, t, y, temperature, alpha=1.0), expected, atol=1e-6)


def test_mixture_weights_the_soft_term_by_alpha(logits):
    s, t, y = logits
    mixed = kd_loss(s, t, y, 2.0, alpha=0.3)
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
