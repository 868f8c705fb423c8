"""romp_fast.metrics keypoint errors (mpjpe, pve, pa_mpjpe) against hand-computed values and a
per-sample numpy reference written here."""
import numpy as np
import pytest
import torch

from romp_fast.metrics import mpjpe, pa_mpjpe, pve

F64 = torch.float64


# --------------------------------------------------------------------------- numpy reference
def mpjpe_np(pred, target, mask=None, root=None):
    """Per-sample loop: root-align each side by its own root, weighted mean distance over visible joints."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    B, J, _ = pred.shape
    w = np.ones((B, J)) if mask is None else np.asarray(mask, np.float64)
    out = np.zeros(B)
    for b in range(B):
        vis = w[b] > 0
        if not vis.any():
            continue
        p, t = pred[b], target[b]
        if isinstance(root, tuple):
            p, t = p - root[0][b], t - root[1][b]
        elif root is not None:
            idx = [root] if isinstance(root, int) else list(root)
            if not vis[idx].all():
                out[b] = np.nan
                continue
            p, t = p - p[idx].mean(0), t - t[idx].mean(0)
        out[b] = np.average(np.linalg.norm(p[vis] - t[vis], axis=-1), weights=w[b][vis])
    return out


def pa_mpjpe_np(pred, target, mask=None):
    """Per-sample loop: Umeyama on the visible joints (SVD with reflection fix), mean distance."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    B, J, _ = pred.shape
    vis_all = np.ones((B, J), bool) if mask is None else np.asarray(mask) > 0
    out = np.zeros(B)
    for b in range(B):
        x, y = pred[b][vis_all[b]], target[b][vis_all[b]]
        if len(x) == 0:
            continue
        xc, yc = x - x.mean(0), y - y.mean(0)
        U, S, Vt = np.linalg.svd(yc.T @ xc)
        d = np.sign(np.linalg.det(U @ Vt))
        R = U @ np.diag([1.0, 1.0, d]) @ Vt
        s = (S * [1.0, 1.0, d]).sum() / (xc**2).sum()
        out[b] = np.linalg.norm(s * xc @ R.T + y.mean(0) - y, axis=-1).mean()
    return out


def inputs(seed, B=4, J=14):
    rng = np.random.default_rng(seed)
    target = rng.normal(scale=0.3, size=(B, J, 3))
    pred = target + 0.05 * rng.normal(size=(B, J, 3)) + rng.normal(size=(B, 1, 3))
    mask = rng.random((B, J)) < 0.75
    mask[:, :3] = True  # roots and >= 3 joints visible
    return torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask)


def close(ours, ref, tol=1e-10):
    np.testing.assert_allclose(ours.numpy(), ref, rtol=tol, atol=tol)


# --------------------------------------------------------------------------- hand-computed values
def test_hand_computed_mpjpe_in_metres():
    target = torch.zeros(2, 3, 3, dtype=F64)
    pred = torch.tensor([[[0.03, 0.04, 0], [0, 0, 0.01], [0, 0, 0]],       # 5 cm, 1 cm, 0
                         [[0.3, 0.4, 0], [0.3, 0.4, 0], [0.3, 0.4, 0]]], dtype=F64)  # 0.5 m shift
    close(mpjpe(pred, target), [0.02, 0.5])
    close(mpjpe(1000 * pred, 1000 * target), [20.0, 500.0])  # millimetres in, millimetres out
    # root 0: sample 0's joints become 0, (-0.03, -0.04, 0.01), (-0.03, -0.04, 0); sample 1 is a shift
    close(mpjpe(pred, target, root=0), [(0 + np.sqrt(0.0026) + 0.05) / 3, 0.0])
    mask = torch.tensor([[True, False, False], [False, False, False]])
    close(mpjpe(pred, target, mask), [0.05, 0.0])  # an empty row scores 0


def test_hand_computed_root_as_mean_of_hips():
    target = torch.tensor([[[0.0, 0, 0], [-0.1, 0, 0], [0.1, 0, 0], [0, 0.5, 0]]], dtype=F64)
    pred = target + torch.tensor([1.0, 2.0, 3.0], dtype=F64)  # a pure translation
    pred[0, 3, 1] += 0.04  # head 4 cm off
    pred[0, 2, 0] += 0.02  # one hip 2 cm off: the hip midpoint moves by 1 cm in x
    # after subtracting the hip midpoints: joint errors |(-0.01,0,0)|, |(-0.01,0,0)|, |(0.01,0,0)|,
    # |(-0.01,0.04,0)|
    expected = (0.01 + 0.01 + 0.01 + np.hypot(0.01, 0.04)) / 4
    close(mpjpe(pred, target, root=[1, 2]), [expected])
    close(mpjpe(pred, target, root=(1, 2)), [expected])  # a tuple of ints is a list of indices too
    close(mpjpe(pred, target), [np.linalg.norm(pred[0] - target[0], axis=-1).mean()])


def test_hand_computed_pa_mpjpe():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(1, 10, 3))
    c, s_ = np.cos(0.7), np.sin(0.7)
    R = np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1]])
    pred = 2.5 * target @ R.T + [0.3, -1.0, 4.0]  # an exact similarity: PA error 0, MPJPE not
    assert pa_mpjpe(torch.from_numpy(pred), torch.from_numpy(target)).item() < 1e-12
    assert mpjpe(torch.from_numpy(pred), torch.from_numpy(target)).item() > 1


# --------------------------------------------------------------------------- against numpy
@pytest.mark.parametrize("root", [None, 0, [2, 1], "tensors"])
@pytest.mark.parametrize("mask_kind", [None, "bool", "float"])
def test_mpjpe_and_pve_match_numpy(root, mask_kind):
    pred, target, mask = inputs(1)
    if mask_kind == "float":
        mask = mask * torch.rand(mask.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    mask = None if mask_kind is None else mask
    if root == "tensors":
        root = (pred[:, :2].mean(1), target[:, :2].mean(1))
        ref = mpjpe_np(pred, target, mask, (root[0].numpy(), root[1].numpy()))
    else:
        ref = mpjpe_np(pred, target, mask, root)
    close(mpjpe(pred, target, mask, root), ref)
    close(pve(pred, target, mask, root), ref)


def test_pve_with_pelvis_roots_on_vertices():
    rng = np.random.default_rng(2)
    target = rng.normal(size=(2, 6890, 3))
    pred = target + 0.01 * rng.normal(size=(2, 6890, 3)) + [[[1.0, 2.0, 3.0]], [[-1.0, 0.0, 0.5]]]
    pred_pelvis, target_pelvis = pred[:, :10].mean(1), target[:, :10].mean(1)
    pred, target = torch.from_numpy(pred), torch.from_numpy(target)
    ours = pve(pred, target, root=(torch.from_numpy(pred_pelvis), torch.from_numpy(target_pelvis)))
    close(ours, mpjpe_np(pred, target, root=(pred_pelvis, target_pelvis)))
    assert (ours < 0.1).all()  # the translation is gone, only the 1 cm noise is left


@pytest.mark.parametrize("mask_kind", [None, "bool", "float01"])
def test_pa_mpjpe_matches_numpy(mask_kind):
    pred, target, mask = inputs(3, B=6, J=24)
    mask[4] = False  # an empty row
    if mask_kind == "float01":
        mask = mask.to(F64)
    mask = None if mask_kind is None else mask
    ours = pa_mpjpe(pred, target, mask)
    close(ours, pa_mpjpe_np(pred, target, mask))
    if mask is not None:
        assert ours[4] == 0
    close(pa_mpjpe(pred.float(), target.float(), mask), pa_mpjpe_np(pred.float(), target.float(), mask), 1e-5)


# --------------------------------------------------------------------------- masks
@pytest.mark.parametrize("metric", ["mpjpe", "pa_mpjpe"])
def test_nan_in_masked_joints_is_ignored(metric):
    pred, target, mask = inputs(4)
    mask[1, 5], mask[2, 7] = False, False
    dirty_pred, dirty_target = pred.clone(), target.clone()
    dirty_pred[1, 5] = float("nan")
    dirty_target[2, 7] = float("inf")
    f = mpjpe if metric == "mpjpe" else pa_mpjpe
    kwargs = {"root": 0} if metric == "mpjpe" else {}
    ours = f(dirty_pred, dirty_target, mask, **kwargs)
    assert torch.isfinite(ours).all()
    close(ours, f(pred, target, mask, **kwargs).numpy())


@pytest.mark.parametrize("root", [0, [1, 2]])
def test_masked_root_gives_nan_only_when_other_joints_are_visible(root):
    pred, target, mask = inputs(5)
    mask[1, 2] = False  # a hip of sample 1 (only matters for the [1, 2] root)
    mask[2, 0] = False  # the pelvis of sample 2
    mask[3] = False  # sample 3: nothing visible at all
    ours = mpjpe(pred, target, mask, root=root)
    close(ours, mpjpe_np(pred, target, mask, root))
    nan = torch.isnan(ours)
    assert nan.tolist() == [False, root != 0, root == 0, False]
    assert ours[3] == 0


# --------------------------------------------------------------------------- ROMP's batch rule
def test_batch_intersection_reproduces_romp_rule():
    pred, target, mask = inputs(6, B=3, J=14)
    mask[:] = True
    mask[0, [4, 5]] = False
    mask[1, [6]] = False
    mask[2, [7, 8, 9]] = False
    common = mask.all(0, keepdim=True).expand(3, 14)
    # ROMP: fit and error on the joints visible in every sample of the batch
    close(pa_mpjpe(pred, target, mask, batch_intersection=True), pa_mpjpe_np(pred, target, common))
    # default: each sample on its own visible joints
    close(pa_mpjpe(pred, target, mask), pa_mpjpe_np(pred, target, mask))
    # without masks the two agree
    close(pa_mpjpe(pred, target, batch_intersection=True), pa_mpjpe_np(pred, target))


def test_sample_value_depends_on_its_batch_only_with_batch_intersection():
    pred, target, mask = inputs(7, B=3, J=14)
    mask[:] = True
    mask[2, 3:9] = False  # sample 2 hides joints that sample 0 sees
    alone_own = pa_mpjpe(pred[:1], target[:1], mask[:1])
    alone_romp = pa_mpjpe(pred[:1], target[:1], mask[:1], batch_intersection=True)
    batch_own = pa_mpjpe(pred, target, mask)[:1]
    batch_romp = pa_mpjpe(pred, target, mask, batch_intersection=True)[:1]
    close(alone_own, alone_romp.numpy())  # one sample: the intersection is its own mask
    close(batch_own, alone_own.numpy())  # own joints: independent of the batch
    assert abs(batch_romp.item() - alone_romp.item()) > 1e-4  # ROMP's rule: the batch changes it
    close(batch_romp, pa_mpjpe_np(pred[:1], target[:1], mask.all(0, keepdim=True)[:1]))


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("metric", [mpjpe, pve, pa_mpjpe])
def test_error_messages(metric):
    name = metric.__name__
    p = torch.zeros(4, 24, 3)
    with pytest.raises(ValueError, match=rf"{name}: pred must be \[B, N, 3\], got \[4, 24, 2\]"):
        metric(torch.zeros(4, 24, 2), torch.zeros(4, 24, 2))
    with pytest.raises(ValueError, match=rf"{name}: target must match pred \[4, 24, 3\], got \[4, 23, 3\]"):
        metric(p, torch.zeros(4, 23, 3))
    with pytest.raises(ValueError, match=rf"{name}: mask must be \[B, N\] = \[4, 24\], got \[4, 23\]"):
        metric(p, p, torch.ones(4, 23, dtype=torch.bool))


def test_root_error_messages():
    p = torch.zeros(4, 24, 3)
    with pytest.raises(ValueError, match=r"root indices \[24\] out of range for 24 points"):
        mpjpe(p, p, root=24)
    with pytest.raises(ValueError, match=r"root indices \[\] out of range"):
        mpjpe(p, p, root=[])
    with pytest.raises(ValueError, match=r"root tensors must be \[B, 3\] = \[4, 3\], got \[4, 1, 3\] and \[4, 3\]"):
        pve(p, p, root=(torch.zeros(4, 1, 3), torch.zeros(4, 3)))
