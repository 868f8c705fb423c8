import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from romp_fast.body import BodyModel
from romp_fast.body.procedural import MODEL_FILE
from romp_fast.body.rotations import axis_angle_to_matrix, matrix_to_rot6d


def _pose(B, seed=0, scale=0.4, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(B, 72, generator=gen, dtype=torch.float64) * scale).to(dtype)


def test_forward_shapes(body):
    for B in (0, 1, 3):
        out = body(_pose(B), torch.zeros(B, 10))
        assert out.vertices.shape == (B, 6890, 3) and out.joints24.shape == (B, 24, 3)
        assert out.joints54.shape == (B, 54, 3) and out.lsp14.shape == (B, 14, 3)
        assert out.h36m17.shape == (B, 17, 3) and out.j17.shape == (B, 17, 3)
        assert out.rotmats.shape == (B, 24, 3, 3)
    assert body.faces.dtype == torch.long and body.faces.shape[1] == 3


def test_matches_smplx_smpl_axis_angle_path(body, model_dir):
    import smplx
    from romp_fast.body.io import load_body_model_data

    d = load_body_model_data(model_dir / MODEL_FILE)
    ref = smplx.SMPL(str(model_dir), data_struct=smplx.utils.Struct(**d), batch_size=3)
    pose, betas = _pose(3), torch.randn(3, 10, generator=torch.Generator().manual_seed(1))
    r = ref(global_orient=pose[:, :3], body_pose=pose[:, 3:], betas=betas)
    out = body(pose, betas)
    torch.testing.assert_close(out.vertices, r.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.joints54[:, :45], r.joints, atol=1e-5, rtol=0)


def test_all_pose_layouts_agree(body):
    pose = _pose(2, seed=3)
    ref = body(pose)
    aa = pose.view(2, 24, 3)
    R = axis_angle_to_matrix(aa)
    for p in (aa, R, matrix_to_rot6d(R), matrix_to_rot6d(R).reshape(2, 144)):
        torch.testing.assert_close(body(p).vertices, ref.vertices, atol=2e-5, rtol=0)
    out = body(global_orient=pose[:, :3], body_pose=pose[:, 3:])
    torch.testing.assert_close(out.vertices, ref.vertices)
    # ROMP: 22 joints (global + 21 body), hands identity
    hands0 = torch.cat([pose[:, :66], torch.zeros(2, 6)], 1)
    want = body(hands0).vertices
    for p in (pose[:, :66], R[:, :22], matrix_to_rot6d(R[:, :22]), matrix_to_rot6d(R[:, :22]).reshape(2, 132)):
        torch.testing.assert_close(body(p).vertices, want, atol=2e-5, rtol=0)
    torch.testing.assert_close(body(global_orient=pose[:, :3], body_pose=pose[:, 3:66]).vertices, want)


def test_joint_sets_against_numpy_reference(body, built):
    from smplx.vertex_ids import vertex_ids

    out = body(_pose(2, seed=4), torch.randn(2, 10, generator=torch.Generator().manual_seed(5)))
    v = out.vertices.double().numpy()
    j54 = out.joints54.double().numpy()
    torch.testing.assert_close(out.joints54[:, :24], out.joints24)
    sel = [vertex_ids["smplh"][k] for k in ("nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe",
                                            "LHeel", "RBigToe", "RSmallToe", "RHeel", "lthumb", "lindex",
                                            "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle",
                                            "rring", "rpinky")]
    np.testing.assert_allclose(j54[:, 24:45], v[:, sel], atol=1e-6)
    np.testing.assert_allclose(j54[:, 45:], np.einsum("jv,bvc->bjc", built["J_regressor_extra"], v), atol=1e-5)
    h36m = np.einsum("jv,bvc->bjc", built["J_regressor_h36m"], v)
    np.testing.assert_allclose(out.h36m17.double().numpy(), h36m, atol=1e-5)
    np.testing.assert_allclose(out.j17.double().numpy(), h36m[:, [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9]], atol=1e-5)
    np.testing.assert_allclose(out.lsp14.double().numpy(), j54[:, [8, 5, 45, 46, 4, 7, 21, 19, 17, 16, 18, 20, 47, 48]])


def test_rest_pose_and_elbow_kinematics(body, built):
    out = body(torch.zeros(1, 72))
    rest = torch.as_tensor(built["joints"], dtype=torch.float32)
    torch.testing.assert_close(out.joints24[0], rest, atol=1e-6, rtol=0)
    # bend the left elbow 90 degrees about y: the wrist swings about the elbow (hand-computed)
    pose = torch.zeros(1, 24, 3)
    pose[0, 18, 1] = math.pi / 2
    j = body(pose).joints24[0]
    arm = rest[20] - rest[18]
    want = rest[18] + torch.tensor([arm[2], arm[1], -arm[0]])
    torch.testing.assert_close(j[20], want, atol=1e-5, rtol=0)
    torch.testing.assert_close(j[:18], rest[:18], atol=1e-6, rtol=0)


def test_lsp_and_h36m_joints_are_where_they_should_be(body):
    out = body(torch.zeros(1, 72))
    lsp, j24 = out.lsp14[0], out.joints24[0]
    # LSP R_Ankle is SMPL R_Ankle, LSP hips sit a few cm below the SMPL hips on the same side
    torch.testing.assert_close(lsp[0], j24[8])
    assert lsp[2, 0] < 0 < lsp[3, 0] and (j24[[2, 1], 1] - lsp[[2, 3], 1] > 0.02).all()
    j17 = out.j17[0]
    assert (j17[:14, 0][[0, 1, 2, 6, 7, 8]] < 0).all() and (j17[:14, 0][[3, 4, 5, 9, 10, 11]] > 0).all()
    assert j17[13, 1] > j17[12, 1] > j17[14, 1]  # head above neck above pelvis


def test_transl_root_align_dtype_and_grad(model_dir):
    body64 = BodyModel(model_dir / MODEL_FILE, dtype=torch.float64)
    pose = _pose(2, dtype=torch.float64).requires_grad_()
    betas = torch.randn(2, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, -1.0]], dtype=torch.float64)
    a, b = body64(pose, betas), body64(pose, betas, transl=t)
    assert a.vertices.dtype == torch.float64
    torch.testing.assert_close(b.vertices, a.vertices + t[:, None])
    torch.testing.assert_close(b.j17, a.j17 + t[:, None])
    c = body64(pose, betas, root_align=True)
    torch.testing.assert_close(c.joints54[:, [45, 46]].mean(1), torch.zeros(2, 3, dtype=torch.float64))
    c.vertices.sum().backward()
    assert torch.isfinite(pose.grad).all() and pose.grad.abs().sum() > 0
    # fewer betas are zero-padded
    torch.testing.assert_close(body64(pose, betas[:, :3]).vertices,
                               body64(pose, torch.nn.functional.pad(betas[:, :3], (0, 7))).vertices)


def test_errors(body, model_dir, tmp_path):
    with pytest.raises(ValueError, match=r"pose must be .* got \[2, 70\]"):
        body(torch.zeros(2, 70))
    with pytest.raises(ValueError, match=r"betas must be \[B, <= 10\] with B = 2, got \[2, 11\]"):
        body(torch.zeros(2, 72), torch.zeros(2, 11))
    with pytest.raises(ValueError, match="body_pose must be"):
        body(global_orient=torch.zeros(2, 3), body_pose=torch.zeros(2, 60))
    with pytest.raises(ValueError, match="either pose or"):
        body(torch.zeros(2, 72), global_orient=torch.zeros(2, 3))
    with pytest.raises(FileNotFoundError):
        BodyModel(tmp_path / "missing.npz")


def test_without_regressors_and_default_cache(model_dir, tmp_path, monkeypatch):
    import shutil

    shutil.copy(model_dir / MODEL_FILE, tmp_path / MODEL_FILE)
    m = BodyModel(tmp_path / MODEL_FILE)
    out = m(torch.zeros(1, 72))
    assert out.joints54 is None and out.lsp14 is None and out.h36m17 is None and out.j17 is None
    with pytest.raises(ValueError, match="root_align needs the extra regressor"):
        m(torch.zeros(1, 72), root_align=True)
    monkeypatch.setenv("ROMP_FAST_CACHE", str(tmp_path / "cache"))
    d = BodyModel()(torch.zeros(1, 72))
    assert d.joints54.shape == (1, 54, 3) and d.h36m17.shape == (1, 17, 3)


def test_import_romp_fast_body_does_not_import_smplx():
    code = "import sys, romp_fast, romp_fast.body; assert 'smplx' not in sys.modules and 'chumpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
