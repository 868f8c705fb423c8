"""Every term: with everything masked (and NaN in the masked predictions) the loss is exactly 0 and
the gradient exists, is finite and is 0."""
import numpy as np
import pytest
import torch

import romp_fast.losses as L

NAN = float("nan")


def _prior(tmp_path_factory):
    p = tmp_path_factory.mktemp("gmm") / "gmm.npz"
    np.savez(p, means=np.zeros((2, 63)), covars=np.stack([np.eye(63), 2 * np.eye(63)]), weights=np.array([0.5, 0.5]))
    return L.GMMPosePrior(p)


F = torch.zeros
B0 = lambda *s: torch.zeros(*s, dtype=torch.bool)  # noqa: E731
CASES = {
    "centermap": (lambda p: L.centermap_focal_loss(p, F(2, 4, 4), B0(2)), (2, 4, 4)),
    "centermap3d": (lambda p: L.centermap3d_focal_loss(p, F(2, 3, 4, 4), B0(2)), (2, 3, 4, 4)),
    "kp2d": (lambda p: L.kp2d_loss(p, F(2, 54, 2), B0(2, 54)), (2, 54, 2)),
    "kp2d_joint": (lambda p: L.kp2d_joint_loss(p, F(2, 54, 2), B0(2, 54)), (2, 54, 2)),
    "mpjpe": (lambda p: L.mpjpe_loss(p, F(2, 54, 3), B0(2, 54)), (2, 54, 3)),
    "pampjpe": (lambda p: L.pampjpe_loss(p, F(2, 54, 3), B0(2, 54)), (2, 54, 3)),
    "pampjpe_inter": (lambda p: L.pampjpe_loss(p, F(2, 54, 3), B0(2, 54), batch_intersection=True), (2, 54, 3)),
    "pose": (lambda p: L.pose_loss(p, F(2, 72), B0(2)), (2, 72)),
    "shape": (lambda p: L.shape_loss(p, F(2, 10), B0(2), person_valid=B0(2)), (2, 10)),
    "cam": (lambda p: L.cam_loss(p, F(2, 3), B0(2)), (2, 3)),
    "depth": (lambda p: L.ordinal_depth_loss(p, torch.zeros(2, 3, dtype=torch.long), B0(2, 3)), (2, 3)),
    "age": (lambda p: L.age_loss(p, torch.zeros(3, dtype=torch.long), B0(3), offset_target=F(3), offset_valid=B0(3)), (3,)),
    "motion": (lambda p: L.motion_offset_loss(p, F(2, 4, 3), B0(2, 4)), (2, 4, 3)),
    "shape_consist": (lambda p: L.shape_consistency_loss(p, B0(2, 4)), (2, 4, 10)),
    "world_rot": (lambda p: L.world_rotation_loss(p, F(2, 4, 3), B0(2, 4)), (2, 4, 3)),
    "world_rot_l2": (lambda p: L.world_rotation_l2_loss(p, F(2, 4, 3), B0(2, 4)), (2, 4, 3)),
    "world_trans": (lambda p: L.world_translation_loss(p, F(2, 4, 3), B0(2, 4)), (2, 4, 3)),
    "velocity": (lambda p: L.velocity_loss(p, F(2, 4, 5, 3), B0(2, 4)), (2, 4, 5, 3)),
    "acceleration": (lambda p: L.acceleration_loss(p, F(2, 4, 3), B0(2, 4)), (2, 4, 3)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_all_masked_is_zero_with_zero_grad(name):
    fn, shape = CASES[name]
    p = torch.full(shape, NAN, requires_grad=True)
    loss = fn(p)
    assert loss.dim() == 0 and loss.item() == 0
    loss.backward()
    assert p.grad is not None and (p.grad == 0).all()


def test_prior_masked(tmp_path_factory):
    prior = _prior(tmp_path_factory)
    p = torch.full((3, 63), NAN, requires_grad=True)
    loss = L.gmm_prior_loss(p, prior, B0(3), threshold=0)
    loss.backward()
    assert loss.item() == 0 and (p.grad == 0).all()
