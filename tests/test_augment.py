"""On-batch augmentation: mixup mixes recordings and their labels by the same coefficient."""

import torch
import torch.nn.functional as F

from signdistill.augment import Augment


def test_mixup_targets_are_the_mixing_weights_of_the_mixed_recordings():
    torch.manual_seed(0)
    x = torch.eye(6).repeat(1, 1, 1).reshape(6, 1, 6) * torch.arange(1, 7).view(6, 1, 1)
    y = torch.arange(6)
    mixed, targets = Augment(mixup=0.4)(x, y, n_classes=6)
    assert torch.allclose(targets.sum(1), torch.ones(6))
    # recording i is a * x_i + (1 - a) * x_j, and its target puts a on class i, 1 - a on class j
    expected = torch.einsum("nk,kct->nct", targets, x)
    assert torch.allclose(mixed, expected, atol=1e-6)
    assert not torch.equal(targets, F.one_hot(y, 6).float())


def test_no_augmentation_returns_the_batch_and_labels_unchanged():
    x, y = torch.randn(4, 3, 20), torch.tensor([0, 1, 2, 1])
    out, targets = Augment()(x, y, n_classes=3)
    assert out is x and targets is y
