"""romp_fast.metrics.angles (global_rotations, geodesic_angle, mpjae, pa_mpjae) against
hand-computed angles and a numpy/scipy float64 reference written here (scipy's rotation vector
norm, as the 3DPW challenge kit's newer copy uses)."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from romp_fast.body.joints import SMPL_PARENTS
from romp_fast.metrics.angles import geodesic_angle, global_rotations, mpjae, pa_mpjae

F64 = torch.float64


def rz(deg):
    return torch.from_numpy(Rotation.from_euler("z", deg, degrees=True).as_matrix())


def global_np(local, parents):
    out = np.zeros_like(local)
    for j, p in enumerate(parents):
        out[:, j] = local[:, j] if p < 0 else out[:, p] @ local[:, j]
    return out


def mpjae_np(pred, target, mask=None):
    B, J = pred.shape[:2]
    out = np.zeros(B)
    for b in range(B):
        vis = np.ones(J, bool) if mask is None else mask[b]
        if vis.any():
            rel = pred[b][vis] @ np.transpose(target[b][vis], (0, 2, 1))
            out[b] = np.degrees(np.linalg.norm(Rotation.from_matrix(rel).as_rotvec(), axis=-1)).mean()
    return out


def random_rots(seed, shape):
    return Rotation.random(int(np.prod(shape)), random_state=seed).as_matrix().reshape(*shape, 3, 3)


def test_hand_computed_angles():
    eye = torch.eye(3, dtype=F64)
    assert torch.allclose(geodesic_angle(rz(30), eye), torch.tensor(np.pi / 6, dtype=F64))
    assert torch.allclose(geodesic_angle(rz(30), rz(-60)), torch.tensor(np.pi / 2, dtype=F64))
    assert abs(geodesic_angle(rz(180), eye).item() - np.pi) < 1e-12
    assert abs(geodesic_angle(rz(179.999), eye).item() - np.radians(179.999)) < 1e-12  # arccos loses this
    assert abs(geodesic_angle(rz(1e-6), eye).item() - np.radians(1e-6)) < 1e-18
    pred = torch.stack([rz(10), rz(20), rz(0)])[None]
    target = torch.stack([rz(0), rz(0), rz(90)])[None]
    assert mpjae(pred, target).item() == pytest.approx(40.0, abs=1e-9)  # (10 + 20 + 90) / 3
    assert mpjae(pred, target, degrees=False).item() == pytest.approx(np.radians(40.0), abs=1e-12)
    assert mpjae(pred, target, torch.tensor([[True, True, False]])).item() == pytest.approx(15.0, abs=1e-9)
    assert mpjae(pred, target, align=rz(-10)[None]).item() == pytest.approx((0 + 10 + 100) / 3, abs=1e-9)


def test_global_rotations_match_numpy_chain():
    local = random_rots(0, (3, 24))
    ours = global_rotations(torch.from_numpy(local), SMPL_PARENTS)
    np.testing.assert_allclose(ours.numpy(), global_np(local, SMPL_PARENTS), atol=1e-14)
    assert global_rotations(torch.zeros(0, 24, 3, 3), SMPL_PARENTS).shape == (0, 24, 3, 3)
    with pytest.raises(ValueError, match="parent before its children"):
        global_rotations(torch.from_numpy(local[:, :3]), [-1, 2, 0])
    with pytest.raises(ValueError, match=r"\[..., 24, 3, 3\]"):
        global_rotations(torch.from_numpy(local[:, :3]), SMPL_PARENTS)


def test_mpjae_matches_scipy():
    pred, target = random_rots(1, (6, 9)), random_rots(2, (6, 9))
    mask = np.random.default_rng(0).random((6, 9)) < 0.7
    mask[4] = False
    ours = mpjae(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask))
    np.testing.assert_allclose(ours.numpy(), mpjae_np(pred, target, mask), atol=1e-9)
    assert ours[4] == 0  # nothing visible
    np.testing.assert_allclose(mpjae(torch.from_numpy(pred), torch.from_numpy(target)).numpy(),
                               mpjae_np(pred, target), atol=1e-9)


def test_pa_mpjae_removes_a_global_rotation_only():
    rng = np.random.default_rng(3)
    target_rot = torch.from_numpy(random_rots(4, (2, 9)))
    target_joints = torch.from_numpy(rng.normal(scale=0.3, size=(2, 24, 3)))
    R0 = torch.from_numpy(random_rots(5, (2,)))
    pred_rot = R0[:, None] @ target_rot
    pred_joints = 1.3 * target_joints @ R0.mT + 2.0  # a similarity of the skeleton
    assert (mpjae(pred_rot, target_rot) > 1).all()
    # Procrustes finds R0^T: the PA error vanishes
    assert pa_mpjae(pred_rot, target_rot, pred_joints, target_joints).abs().max() < 1e-6
    # a per-joint perturbation survives the alignment
    bent = pred_rot.clone()
    bent[:, 3] = R0 @ rz(25) @ target_rot[:, 3]
    np.testing.assert_allclose(pa_mpjae(bent, target_rot, pred_joints, target_joints).numpy(), [25 / 9] * 2,
                               atol=1e-6)
    # collapsed skeleton: identity alignment (the ops' convention, the kit's for an all-zero pred)
    zero = torch.zeros_like(pred_joints)
    np.testing.assert_allclose(pa_mpjae(pred_rot, target_rot, zero, target_joints).numpy(),
                               mpjae(pred_rot, target_rot).numpy(), atol=1e-9)


def test_masked_nan_gradients_and_errors():
    pred = torch.from_numpy(random_rots(6, (2, 5))).requires_grad_()
    target = torch.from_numpy(random_rots(7, (2, 5)))
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[0, 1] = False
    dirty = pred.detach().clone()
    dirty[0, 1] = torch.nan
    assert torch.allclose(mpjae(dirty, target, mask), mpjae(pred.detach(), target, mask))
    mpjae(pred, target, mask).sum().backward()
    assert torch.isfinite(pred.grad).all() and (pred.grad[0, 1] == 0).all()
    assert mpjae(pred[:0], target[:0]).shape == (0,)
    with pytest.raises(ValueError, match=r"pred must be \[B, J, 3, 3\]"):
        mpjae(pred[..., :2], target[..., :2])
    with pytest.raises(ValueError, match=r"mask must be \[B, J\]"):
        mpjae(pred, target, mask[:, :3])
    with pytest.raises(ValueError, match=r"align must be \[B, 3, 3\]"):
        mpjae(pred, target, align=torch.eye(3, dtype=F64))
