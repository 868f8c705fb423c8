import math

import numpy as np
import pytest
import torch

from romp_fast.data import geometry as G
from romp_fast.model import perspective_project, weak_perspective_project
from romp_fast.model.projection import cam_to_translation, project


def test_weak_perspective_hand_computed():
    pts = torch.tensor([[[0.5, -0.25, 3.0], [0.0, 0.0, 0.0]]])
    cam = torch.tensor([[2.0, 0.1, -0.3]])  # (s, ty, tx)
    got = weak_perspective_project(pts, cam)
    assert torch.allclose(got, torch.tensor([[[2 * 0.5 - 0.3, 2 * -0.25 + 0.1], [-0.3, 0.1]]]))


def test_perspective_hand_computed():
    # FOV 90 deg: tan = 1. s = 0.5 -> root depth 2 m, root at (tx / s, ty / s) = (0.4, -0.2).
    pts = torch.tensor([[[1.0, 0.5, 2.0]]])
    cam = torch.tensor([[0.5, -0.1, 0.2]])
    got = perspective_project(pts, cam, fov_deg=90.0)
    X = np.array([1.0 + 0.4, 0.5 - 0.2, 2.0 + 2.0])  # camera frame
    assert torch.allclose(got[0, 0], torch.tensor(X[:2] / X[2], dtype=torch.float32))


def test_perspective_matches_pinhole_numpy():
    rng = np.random.default_rng(0)
    fov, S = 60.0, 256
    f = S / 2 / math.tan(math.radians(fov) / 2)
    trans = np.stack([rng.uniform(-1, 1, 5), rng.uniform(-0.5, 0.5, 5), rng.uniform(3, 9, 5)], -1)
    pts = rng.normal(0, 0.4, (5, 54, 3))
    cam_px = (pts + trans[:, None]) @ np.array([[f, 0, S / 2], [0, f, S / 2], [0, 0, 1]]).T
    expected = (cam_px[..., :2] / cam_px[..., 2:]) * 2 / S - 1
    K = G.intrinsics(S, fov)
    cam = G.cam_from_trans(torch.tensor(trans, dtype=torch.float32), K, S, S)
    got = perspective_project(torch.tensor(pts, dtype=torch.float64), cam.double(), fov)
    assert np.allclose(got.numpy(), expected, atol=1e-5)
    # weak perspective is the X_z = 0 limit of the same camera
    flat = torch.tensor(pts).clone()
    flat[..., 2] = 0
    assert torch.allclose(perspective_project(flat, cam.double(), fov), weak_perspective_project(flat, cam.double()))


def test_gt_camera_reproduces_synthetic_kp2d(batch4):
    """The CPU default projection reproduces the synthetic data's GT 2D joints from its GT 3D
    joints and camera exactly; ROMP's weak perspective does not (why perspective is the default)."""
    m = batch4["kp2d_valid"] & batch4["cam_valid"][..., None]
    persp = (perspective_project(batch4["kp3d"], batch4["cam"]) - batch4["kp2d"]).norm(dim=-1)[m]
    weak = (weak_perspective_project(batch4["kp3d"], batch4["cam"]) - batch4["kp2d"]).norm(dim=-1)[m]
    assert persp.max() < 1e-5
    assert weak.mean() > 1e-3


def test_cam_to_translation_inverts_cam_from_trans():
    trans = torch.tensor([[0.3, -0.2, 4.0], [-1.0, 0.5, 8.0]])
    K = G.intrinsics(128, 60.0)
    cam = G.cam_from_trans(trans, K, 128, 128)
    assert torch.allclose(cam_to_translation(cam, 60.0), trans, atol=1e-5)


def test_projection_errors_and_dispatch():
    pts, cam = torch.zeros(2, 54, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match="cam must be"):
        perspective_project(pts, torch.ones(3, 3))
    with pytest.raises(ValueError, match="points must be"):
        weak_perspective_project(torch.zeros(2, 54, 2), cam)
    with pytest.raises(ValueError, match="projection"):
        project(pts, cam, "ortho")
    assert torch.equal(project(pts, cam, "weak"), weak_perspective_project(pts, cam))


def test_projection_gradients():
    pts = torch.randn(3, 54, 3, dtype=torch.float64, requires_grad=True)
    cam = torch.tensor([[0.3, 0.1, -0.2], [0.5, 0.0, 0.0], [0.2, -0.3, 0.4]], dtype=torch.float64,
                       requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, c: perspective_project(p, c), (pts, cam))
    assert torch.autograd.gradcheck(weak_perspective_project, (pts, cam))
