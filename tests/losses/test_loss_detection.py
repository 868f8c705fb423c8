import math

import pytest
import torch

from romp_fast.losses import centermap3d_focal_loss, centermap_focal_loss


def _image():
    # one positive (centre) cell, a penalty-reduced negative and a plain negative
    target = torch.zeros(3, 3, dtype=torch.float64)
    target[1, 1], target[0, 0] = 1.0, 0.5
    pred = torch.zeros(3, 3, dtype=torch.float64)
    pred[1, 1], pred[0, 0], pred[2, 2] = 0.8, 0.3, 0.1
    return pred, target


def _hand_value():
    P = math.log(0.8) * 0.2 ** 2
    Q = math.log(0.7) * 0.3 ** 2 * 0.5 ** 4 + math.log(0.9) * 0.1 ** 2
    return -(P + Q) / (1 + 1e-4)


def test_focal_value_by_hand():
    pred, target = _image()
    got = centermap_focal_loss(pred[None], target[None])
    assert got.item() == pytest.approx(_hand_value(), rel=1e-12)
    # [B, 1, H, W] layout gives the same
    assert centermap_focal_loss(pred[None, None], target[None, None]).item() == pytest.approx(_hand_value())


def test_focal_clamps_only_inside_logs():
    target = torch.zeros(1, 2, 2, dtype=torch.float64)
    target[0, 0, 0] = 1.0
    pred = torch.zeros(1, 2, 2, dtype=torch.float64)
    pred[0, 0, 0] = 0.0   # positive predicted 0: log(1e-3) * (1 - 0)^2
    pred[0, 1, 1] = 1.0   # negative predicted 1: log(1 - 0.999) * 1^2 * 1
    want = -(math.log(1e-3) + math.log(1e-3)) / (1 + 1e-4)
    assert centermap_focal_loss(pred, target).item() == pytest.approx(want, rel=1e-9)


def test_focal_no_positive_is_minus_q_and_batch_mean():
    pred, target = _image()
    t2 = torch.zeros(3, 3, dtype=torch.float64)
    p2 = torch.full((3, 3), 0.2, dtype=torch.float64)
    no_pos = -9 * math.log(0.8) * 0.04
    got = centermap_focal_loss(torch.stack([pred, p2]), torch.stack([target, t2]))
    assert got.item() == pytest.approx((_hand_value() + no_pos) / 2, rel=1e-12)


def test_focal_image_mask_ignores_nan_and_gives_zero_grad():
    pred, target = _image()
    bad = torch.full((3, 3), float("nan"), dtype=torch.float64)
    p = torch.stack([pred, bad]).requires_grad_()
    loss = centermap_focal_loss(p, torch.stack([target, target]), torch.tensor([True, False]))
    assert loss.item() == pytest.approx(_hand_value())
    loss.backward()
    assert torch.isfinite(p.grad).all() and (p.grad[1] == 0).all() and (p.grad[0] != 0).any()


def test_focal_all_masked_is_zero_with_zero_grad():
    p = torch.full((2, 4, 4), float("nan"), requires_grad=True)
    loss = centermap_focal_loss(p, torch.zeros(2, 4, 4), torch.tensor([False, False]))
    loss.backward()
    assert loss.item() == 0 and (p.grad == 0).all()


def test_trace_cap_divides_by_four_until_below():
    target = torch.zeros(3, 1, 2, dtype=torch.float64)
    pred = torch.zeros(3, 1, 2, dtype=torch.float64)
    pred[0, 0, 0] = 0.999   # -log(1e-3) * 0.998 = 6.89 -> 1.72 -> 0.431
    pred[1, 0, 0] = 0.5     # -log(0.5) * 0.25 = 0.173, untouched
    pred[2, 0, 0] = 0.8     # -log(0.2) * 0.64 = 1.03 -> 0.258 (a halving would stop at 0.515)
    l0 = -math.log(1e-3) * 0.999 ** 2
    l1 = -math.log(0.5) * 0.25
    l2 = -math.log(0.2) * 0.64
    got = centermap_focal_loss(pred, target, max_image_loss=0.8)
    assert got.item() == pytest.approx((l0 / 16 + l1 + l2 / 4) / 3, rel=1e-12)
    assert centermap_focal_loss(pred, target).item() == pytest.approx((l0 + l1 + l2) / 3, rel=1e-12)


def test_focal_3d_averages_over_depth_and_counts_positives_over_volume():
    target = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    pred = torch.full((1, 2, 2, 2), 0.1, dtype=torch.float64)
    target[0, 0, 0, 0] = 1.0
    target[0, 1, 1, 1] = 1.0
    pred[0, 0, 0, 0], pred[0, 1, 1, 1] = 0.6, 0.7
    P = (math.log(0.6) * 0.4 ** 2 + math.log(0.7) * 0.3 ** 2) / 2   # summed per bin, averaged over D=2
    Q = 6 * math.log(0.9) * 0.01 / 2
    want = -(P + Q) / (2 + 1e-4)
    assert centermap3d_focal_loss(pred, target).item() == pytest.approx(want, rel=1e-12)
    z = centermap3d_focal_loss(pred.clone().requires_grad_(), target, torch.tensor([False]))
    assert z.item() == 0


def test_focal_gradcheck():
    g = torch.Generator().manual_seed(1)
    pred = (torch.rand(2, 4, 4, generator=g, dtype=torch.float64) * 0.9 + 0.05).requires_grad_()
    target = torch.rand(2, 4, 4, generator=g, dtype=torch.float64) * 0.9
    target[0, 1, 2] = 1.0
    valid = torch.tensor([True, True])
    assert torch.autograd.gradcheck(lambda p: centermap_focal_loss(p, target, valid), (pred,))
    p3 = (torch.rand(1, 2, 3, 3, generator=g, dtype=torch.float64) * 0.9 + 0.05).requires_grad_()
    t3 = torch.zeros(1, 2, 3, 3, dtype=torch.float64)
    t3[0, 1, 1, 1] = 1
    assert torch.autograd.gradcheck(lambda p: centermap3d_focal_loss(p, t3), (p3,))


def test_focal_shape_errors():
    with pytest.raises(ValueError, match="equal shape"):
        centermap_focal_loss(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=r"image_valid must be \[2\]"):
        centermap_focal_loss(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4), torch.tensor([True]))
