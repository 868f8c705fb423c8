import math

import pytest
import torch

from romp_fast.body.rotations import axis_angle_to_matrix
from romp_fast.losses import cam_loss, pose_loss, shape_loss
from romp_fast.losses.params import SHAPE_WEIGHTS


def _fro(theta):  # |R_z(theta) - I|_F = 2 sqrt(2) |sin(theta / 2)|
    return 2 * math.sqrt(2) * abs(math.sin(theta / 2))


def test_pose_loss_by_hand():
    target = torch.zeros(1, 72, dtype=torch.float64)
    pred = target.clone()
    pred[0, 2] = 0.5            # global orientation: 0.5 rad about z
    pred[0, 3 * 5 + 2] = 1.0    # body joint 5: 1 rad about z
    pred[0, 3 * 23] = 2.0       # hand joint 23: not supervised
    valid = torch.tensor([True])
    assert pose_loss(pred, target, valid).item() == pytest.approx(_fro(0.5) + _fro(1.0) / 21)
    mats = axis_angle_to_matrix(pred.view(1, 24, 3))
    assert pose_loss(mats, target, valid).item() == pytest.approx(_fro(0.5) + _fro(1.0) / 21)
    # 2 pi about the same axis is the same rotation
    wrapped = target.clone()
    wrapped[0, 3 * 7] = 2 * math.pi
    assert pose_loss(wrapped, target, valid).item() == pytest.approx(0, abs=1e-12)


def test_pose_loss_separate_global_mask_and_mean_over_people():
    target = torch.zeros(2, 72, dtype=torch.float64)
    pred = target.clone()
    pred[0, 2], pred[1, 2] = 0.5, 1.5   # person 1's global orientation is not supervised
    pred[1, 3 * 5 + 2] = 1.0
    valid = torch.tensor([True, True])
    g = torch.tensor([True, False])
    got = pose_loss(pred, target, valid, global_valid=g)
    assert got.item() == pytest.approx(_fro(0.5) + _fro(1.0) / 21 / 2)


def test_pose_loss_masked_nan_and_gradcheck():
    pred = torch.full((2, 72), float("nan"), dtype=torch.float64)
    pred[0] = 0.1
    pred.requires_grad_()
    target = torch.zeros(2, 72, dtype=torch.float64)
    loss = pose_loss(pred, target, torch.tensor([True, False]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all() and (pred.grad[1] == 0).all()
    z = pose_loss(pred, target, torch.tensor([False, False]))
    assert z.item() == 0
    g = torch.Generator().manual_seed(0)
    p = torch.randn(2, 72, generator=g, dtype=torch.float64).requires_grad_()
    t = torch.randn(2, 72, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: pose_loss(x, t, torch.tensor([True, True])), (p,))


def test_shape_loss_by_hand():
    pred = torch.zeros(2, 11, dtype=torch.float64)   # BEV predicts 11 (10 + kid offset): extra ignored
    target = torch.zeros(2, 10, dtype=torch.float64)
    pred[0, 1] = 1.0          # supervised, coefficient weight 0.64
    pred[0, 10] = 99.0
    pred[1, :10] = 0.5        # no GT: prior mean(0.25)
    valid = torch.tensor([True, False])
    assert SHAPE_WEIGHTS[1] == 0.64
    assert shape_loss(pred, target, valid).item() == pytest.approx(0.64 / 20 + 0.25 / 20)
    assert shape_loss(pred, target, valid, prior_divisor=80).item() == pytest.approx(0.64 / 20 + 0.25 / 80)
    # padded slot (not a person) gets no prior
    assert shape_loss(pred, target, valid, person_valid=torch.tensor([True, False])).item() == pytest.approx(0.64 / 20)


def test_shape_and_cam_all_masked_zero_grad():
    b = torch.full((3, 10), float("nan"), requires_grad=True)
    z = shape_loss(b, torch.zeros(3, 10), torch.zeros(3, dtype=torch.bool),
                   person_valid=torch.zeros(3, dtype=torch.bool))
    z.backward()
    assert z.item() == 0 and (b.grad == 0).all()
    c = torch.full((3, 3), float("nan"), requires_grad=True)
    z = cam_loss(c, torch.zeros(3, 3), torch.zeros(3, dtype=torch.bool))
    z.backward()
    assert z.item() == 0 and (c.grad == 0).all()


def test_cam_loss_by_hand_and_gradcheck():
    pred = torch.tensor([[0.3, 0.4, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.2]], dtype=torch.float64)
    valid = torch.tensor([True, False, True])
    assert cam_loss(pred, torch.zeros(3, 3, dtype=torch.float64), valid).item() == pytest.approx(0.35)
    p = pred.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: cam_loss(x, torch.zeros(3, 3, dtype=torch.float64), valid), (p,))
    assert torch.autograd.gradcheck(
        lambda x: shape_loss(x, torch.ones(3, 10, dtype=torch.float64), valid),
        (torch.randn(3, 10, dtype=torch.float64, requires_grad=True),))
