import itertools
import math

import pytest
import torch

from romp_fast.losses import (acceleration_loss, motion_offset_loss, shape_consistency_loss,
                              velocity_loss, world_rotation_l2_loss, world_rotation_loss,
                              world_translation_loss, world_translation_scale)

D64 = torch.float64


def test_motion_offsets_by_hand():
    traj = torch.tensor([[[0, 0, 0], [1, 0, 0], [1, 2, 0]]], dtype=D64)
    pred = torch.tensor([[[9, 9, 9], [1, 0, 0], [0, 0, 0]]], dtype=D64)   # frame 0 has no offset
    v = torch.ones(1, 3, dtype=torch.bool)
    assert motion_offset_loss(pred, traj, v).item() == pytest.approx((0 + 2) / 2)
    v[0, 1] = False   # no two consecutive valid frames left
    p = pred.clone().requires_grad_()
    z = motion_offset_loss(p, traj, v)
    z.backward()
    assert z.item() == 0 and (p.grad == 0).all()


def test_shape_consistency_by_hand():
    betas = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [float("nan"), 1.0]]], dtype=D64,
                         requires_grad=True)
    v = torch.tensor([[True, True, True, False]])
    loss = shape_consistency_loss(betas, v)   # mean (2, 0): distances 2, 1, 3
    assert loss.item() == pytest.approx(2.0)
    loss.backward()
    # the track mean is detached (TRACE): d/d b0 of |b0 - m| / 3 = (-1, 0) / 3 (-2/9 if it were not)
    assert betas.grad[0, 0].tolist() == pytest.approx([-1 / 3, 0.0])
    assert (betas.grad[0, 3] == 0).all()
    # several tracks of different lengths: mean over all valid frames
    two = torch.zeros(2, 3, 4, dtype=D64)
    two[0, :2, 0] = torch.tensor([0.0, 2.0])     # distances 1, 1
    two[1, :, 1] = torch.tensor([0.0, 0.0, 3.0])  # mean 1: distances 1, 1, 2
    vv = torch.tensor([[True, True, False], [True, True, True]])
    assert shape_consistency_loss(two, vv).item() == pytest.approx(6 / 5)


def test_world_rotation_angle_by_hand():
    gt = torch.zeros(1, 2, 3, dtype=D64)
    pred = gt.clone()
    pred[0, 1, 2] = 0.7
    v = torch.ones(1, 2, dtype=torch.bool)
    assert world_rotation_loss(pred, gt, v).item() == pytest.approx(0.7)
    # no sign disambiguation (TRACE): a 1.5 pi rotation counts as 1.5 pi, not 0.5 pi
    pred[0, 1, 2] = 1.5 * math.pi
    assert world_rotation_loss(pred, gt, v).item() == pytest.approx(1.5 * math.pi)
    # a common rotation of every frame does not matter (relative rotations only)
    common = torch.tensor([0.3, -0.2, 0.5], dtype=D64)
    from romp_fast.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
    R = axis_angle_to_matrix(common)
    g2 = torch.tensor([[[0.1, 0.2, 0.3], [0.0, -0.4, 0.2], [0.5, 0.1, 0.0]]], dtype=D64)
    moved = matrix_to_axis_angle(R @ axis_angle_to_matrix(g2))
    assert world_rotation_loss(moved, g2, torch.ones(1, 3, dtype=torch.bool)).item() == pytest.approx(0, abs=1e-7)


def test_world_rotation_zero_error_has_finite_grad_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    gt = torch.randn(2, 4, 3, generator=g, dtype=D64)
    p = gt.clone().requires_grad_()
    v = torch.ones(2, 4, dtype=torch.bool)
    v[1, 1:] = False   # one valid frame: no pair, track not counted
    loss = world_rotation_loss(p, gt, v)
    loss.backward()
    assert loss.item() == pytest.approx(0, abs=1e-7) and torch.isfinite(p.grad).all()
    x = (gt + 0.3 * torch.randn(2, 4, 3, generator=g, dtype=D64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: world_rotation_loss(t, gt, v), (x,))


def test_world_rotation_l2_by_hand():
    gt = torch.zeros(1, 2, 3, dtype=D64)
    pred = gt.clone()
    pred[0, 0, 2] = 1.0
    v = torch.ones(1, 2, dtype=torch.bool)
    assert world_rotation_l2_loss(pred, gt, v).item() == pytest.approx(2 * math.sqrt(2) * math.sin(0.5) / 2)


def _brute_world_trans(p, g):
    n = len(p)
    gc, pc = g - g.mean(0), p - p.mean(0)
    var = (gc ** 2).sum(1).mean()
    c = min(float(var / torch.linalg.svdvals(gc.T @ pc / n).sum()), 10.0)
    errs = [float(torch.linalg.norm(c * (p[i] - p[j]) - (g[i] - g[j])))
            for i, j in itertools.permutations(range(n), 2)]
    return sum(errs) / len(errs)


def test_world_translation_scale_and_value():
    g = torch.Generator().manual_seed(2)
    gt = torch.randn(1, 5, 3, generator=g, dtype=D64)
    v = torch.ones(1, 5, dtype=torch.bool)
    assert world_translation_scale(2 * gt, gt, v).item() == pytest.approx(0.5)
    assert world_translation_loss(2 * gt + 1, gt, v).item() == pytest.approx(0, abs=1e-12)
    # a tiny prediction would need scale 100: clamped at 10
    small = 0.01 * gt
    pairs = [float(torch.linalg.norm(gt[0, i] - gt[0, j])) for i, j in itertools.permutations(range(5), 2)]
    assert world_translation_loss(small, gt, v).item() == pytest.approx(0.9 * sum(pairs) / len(pairs))
    noisy = gt + 0.3 * torch.randn(1, 5, 3, generator=g, dtype=D64)
    assert world_translation_loss(noisy, gt, v).item() == pytest.approx(_brute_world_trans(noisy[0], gt[0]))


def test_world_translation_masks_and_gradcheck():
    g = torch.Generator().manual_seed(3)
    gt = torch.randn(3, 5, 3, generator=g, dtype=D64)
    pred = gt + 0.2 * torch.randn(3, 5, 3, generator=g, dtype=D64)
    v = torch.ones(3, 5, dtype=torch.bool)
    v[0, 2] = False
    v[1, 1:] = False    # single frame: track skipped
    pred[0, 2] = float("nan")
    pred[1, 3] = float("nan")
    p = pred.clone().requires_grad_()
    loss = world_translation_loss(p, gt, v)
    keep = [0, 1, 3, 4]
    want = (_brute_world_trans(pred[0, keep], gt[0, keep]) + _brute_world_trans(pred[2], gt[2])) / 2
    assert loss.item() == pytest.approx(want)
    loss.backward()
    assert torch.isfinite(p.grad).all() and (p.grad[1] == 0).all() and (p.grad[0, 2] == 0).all()
    # the scale is detached (TRACE): the gradient is that of the pair term at fixed c
    x = pred[2:].clone().requires_grad_()
    world_translation_loss(x, gt[2:], v[2:]).backward()
    y = pred[2].clone().requires_grad_()
    c = world_translation_scale(pred[2:], gt[2:], v[2:])[0]
    ref = torch.stack([torch.linalg.norm(c * (y[i] - y[j]) - (gt[2, i] - gt[2, j]))
                       for i, j in itertools.permutations(range(5), 2)]).mean()
    ref.backward()
    assert torch.allclose(x.grad[0], y.grad)


def test_velocity_and_acceleration_by_hand():
    gt = torch.zeros(2, 3, 3, dtype=D64)
    pred = gt.clone()
    pred[0, 1, 0] = 1.0   # x: 0, 1, 0 -> velocity errors 1, 1; acceleration 0 - 2 + 0 -> 2
    v = torch.ones(2, 3, dtype=torch.bool)
    v[1, 1] = False       # track 1 has no two consecutive valid frames: left out of the mean
    pred[1] = 7.0
    assert velocity_loss(pred, gt, v).item() == pytest.approx(1.0)
    assert acceleration_loss(pred, gt, v).item() == pytest.approx(2.0)
    # [S, T, J, D] layout: mean over joints
    pj = torch.stack([pred, gt], 2)
    gj = torch.stack([gt, gt], 2)
    assert velocity_loss(pj, gj, v).item() == pytest.approx(0.5)
    z = pred.clone().requires_grad_()
    zero = acceleration_loss(z, gt, torch.zeros(2, 3, dtype=torch.bool))
    zero.backward()
    assert zero.item() == 0 and (z.grad == 0).all()


def test_gather_tracks_regroups_clip_batches():
    from romp_fast.losses import gather_tracks
    # 2 clips x 3 frames x 2 slots; clip 0: id 7 in frames 0, 2 (slot swaps), id 3 in frame 1
    ids = torch.tensor([[[7, 0], [3, 0], [0, 7]], [[7, 0], [7, 0], [7, 0]]])
    valid = torch.tensor([[[True, False], [True, False], [False, True]],
                          [[True, False], [False, False], [True, False]]])
    x = torch.arange(12, dtype=D64).view(2, 3, 2, 1).requires_grad_()
    mask, keys, tracks = gather_tracks(ids, valid, x)
    assert keys.tolist() == [[0, 3], [0, 7], [1, 7]]
    assert mask.tolist() == [[False, True, False], [True, False, True], [True, False, True]]
    assert tracks[..., 0].tolist() == [[0, 2, 0], [0, 0, 5], [6, 0, 10]]
    tracks.sum().backward()
    assert x.grad.view(-1).tolist() == [1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0]
    bad = ids.clone()
    bad[0, 0, 1] = 7
    with pytest.raises(ValueError, match="twice in one frame"):
        gather_tracks(bad, torch.ones(2, 3, 2, dtype=torch.bool), x)


def test_kp2d_joint_loss_trace_variant():
    from romp_fast.losses import kp2d_joint_loss
    target = torch.zeros(2, 3, 2, dtype=D64)
    pred = torch.tensor([[[0.3, 0.4], [0.0, 1.0], [500.0, 0.0]],
                         [[float("nan"), 0.0], [0.0, 0.0], [9.0, 9.0]]], dtype=D64, requires_grad=True)
    vis = torch.tensor([[True, True, True], [True, True, False]])
    # flat mean over the visible joints whose error is finite and < 100: (0.5 + 1 + 0) / 3
    loss = kp2d_joint_loss(pred, target, vis)
    assert loss.item() == pytest.approx(0.5)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and (pred.grad[0, 2] == 0).all() and (pred.grad[1, 0] == 0).all()
