"""romp_fast.metrics.translation.root_translation_error against hand-computed values."""
import pytest
import torch

from romp_fast.metrics.translation import root_translation_error


def test_hand_computed():
    pred = torch.tensor([[0.3, 0.4, 5.0], [1.0, -2.0, 3.0]], dtype=torch.float64)
    target = torch.tensor([[0.0, 0.0, 5.0], [1.0, -2.0, 1.0]], dtype=torch.float64)
    l2, axis = root_translation_error(pred, target)
    assert torch.allclose(l2, torch.tensor([0.5, 2.0], dtype=torch.float64))
    assert torch.allclose(axis, torch.tensor([[0.3, 0.4, 0.0], [0.0, 0.0, 2.0]], dtype=torch.float64))
    l2, axis = root_translation_error(pred[:0], target[:0])
    assert l2.shape == (0,) and axis.shape == (0, 3)


def test_gradient_and_errors():
    pred = torch.tensor([[0.3, 0.4, 5.0]], dtype=torch.float64, requires_grad=True)
    l2, _ = root_translation_error(pred, torch.tensor([[0.0, 0.0, 5.0]], dtype=torch.float64))
    l2.sum().backward()
    assert torch.allclose(pred.grad, torch.tensor([[0.6, 0.8, 0.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"pred must be \[B, 3\]"):
        root_translation_error(torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="target must match"):
        root_translation_error(torch.zeros(2, 3), torch.zeros(3, 3))
