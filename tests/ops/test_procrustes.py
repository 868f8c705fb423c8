"""romp_fast.ops procrustes ops (similarity_transform, procrustes_align, pa_mpjpe).

The oracle is `umeyama_np`, a float64 numpy implementation written here from Umeyama (1991),
independent of both the native kernels (Horn quaternions) and the torch reference; both paths
are compared against it, on CPU and (when built) CUDA.
"""
import contextlib

import numpy as np
import pytest
import torch
from torch.library import opcheck

import romp_fast.ops as ops

F32, F64 = torch.float32, torch.float64
PATHS = ["native", "reference"]


# --------------------------------------------------------------------------- numpy reference
def umeyama_np(x, y, w=None):
    """Per-sample weighted Umeyama in float64 with the documented degenerate conventions.

    x, y: [B, N, 3]; w: [B, N] or None. Returns R [B,3,3], s [B], t [B,3], aligned [B,N,3], error [B].
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    B, N, _ = x.shape
    w = np.ones((B, N)) if w is None else np.asarray(w, np.float64)
    with np.errstate(invalid="ignore"):
        use = w > 0
        bad_w = ~(w >= 0).all(-1)
    bad_pt = (use[..., None] & ~(np.isfinite(x) & np.isfinite(y))).any((1, 2))
    invalid = bad_w | bad_pt
    wz = np.where(use, w, 0.0)
    x0, y0 = np.where(use[..., None], x, 0.0), np.where(use[..., None], y, 0.0)
    W = wz.sum(-1)
    Wd = np.where(W > 0, W, 1.0)
    mx = np.einsum("bn,bnk->bk", wz, x0) / Wd[:, None]
    my = np.einsum("bn,bnk->bk", wz, y0) / Wd[:, None]
    xc = np.where(use[..., None], x0 - mx[:, None], 0.0)
    yc = np.where(use[..., None], y0 - my[:, None], 0.0)
    var_x = np.einsum("bn,bnk,bnk->b", wz, xc, xc)
    sigma = np.einsum("bn,bni,bnj->bij", wz, yc, xc)  # Umeyama's Sigma_xy (times W): target x pred^T
    empty = W <= 0
    collapsed = ~empty & (var_x <= 1e-20 * (var_x + W * (mx**2).sum(-1)))
    regular = ~(invalid | empty | collapsed)
    U, D, Vt = np.linalg.svd(np.where(regular[:, None, None], sigma, np.eye(3)))
    S = np.ones((B, 3))
    S[:, 2] = np.where(np.linalg.det(U) * np.linalg.det(Vt) < 0, -1.0, 1.0)
    R = np.where(regular[:, None, None], U @ (S[:, :, None] * Vt), np.eye(3))
    s = np.where(regular, (D * S).sum(-1) / np.where(regular, var_x, 1.0), np.where(empty, 1.0, 0.0))
    t = my - s[:, None] * np.einsum("bij,bj->bi", R, mx)
    t = np.where(empty[:, None], 0.0, np.where(collapsed[:, None], my, t))
    R, s, t = (np.where(invalid.reshape((B,) + (1,) * (a.ndim - 1)), np.nan, a) for a in (R, s, t))
    aligned = s[:, None, None] * np.einsum("bij,bnj->bni", R, x) + t[:, None]
    dist = np.linalg.norm(np.where(use[..., None], aligned - y, 0.0), axis=-1)
    err = np.where(invalid, np.nan, (wz * dist).sum(-1) / Wd)
    return R, s, t, aligned, err


def random_rotations(rng, B):
    q, r = np.linalg.qr(rng.normal(size=(B, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[:, :, 2] *= np.sign(np.linalg.det(q))[:, None]
    return q


# --------------------------------------------------------------------------- helpers
def to_torch(a, dtype=F64, device="cpu"):
    return torch.from_numpy(np.ascontiguousarray(a)).to(
        device=device, dtype=torch.bool if a.dtype == bool else dtype)


def make_inputs(rng, B, N, dtype=F64, mask=None, device="cpu"):
    """pred ~ N(0, 1); target = noisy similarity of pred; mask None/'bool'/'float' with an empty row."""
    x = rng.normal(size=(B, N, 3))
    y = 1.3 * x @ random_rotations(rng, B).transpose(0, 2, 1) + rng.normal(size=(B, 1, 3))
    y = y + 0.3 * rng.normal(size=(B, N, 3))
    w = None
    if mask is not None:
        w = rng.random((B, N)) < 0.7
        if mask == "float":
            w = w * rng.uniform(0.1, 2.0, size=(B, N))
        if B >= 2:
            w[B // 2] = 0
    return to_torch(x, dtype, device), to_torch(y, dtype, device), None if w is None else to_torch(w, dtype, device)


def np_of(*tensors):
    return [None if a is None else a.detach().cpu().double().numpy() for a in tensors]


def ref_np(pred, target, weight=None):
    return umeyama_np(*np_of(pred, target, weight))


def run(path, pred, target, weight=None):
    """(R, s, t, aligned, error) through the public wrappers on the given path."""
    with ops.use_reference() if path == "reference" else contextlib.nullcontext():
        R, s, t = ops.similarity_transform(pred.detach(), target, weight)
        return R, s, t, ops.procrustes_align(pred, target, weight), ops.pa_mpjpe(pred, target, weight)


def tol(dtype):
    return 1e-5 if dtype == F32 else 1e-10


def assert_near(ours, ref, dtype, where=None, slack=1.0):
    """|ours - ref| <= slack * tol * (1 + |ref|) elementwise, NaN only where ref is NaN."""
    ours, ref = np_of(ours)[0], np.broadcast_to(np.asarray(ref, np.float64), ours.shape)
    if where is not None:
        ours, ref = ours[where], ref[where]
    bound = slack * tol(dtype) * (1 + np.abs(ref))
    ok = (np.abs(ours - ref) <= bound) | (np.isnan(ours) & np.isnan(ref))
    assert ok.all(), f"{(~ok).sum()} of {ok.size} off; worst {ours[~ok][:4]} vs {ref[~ok][:4]}"


def assert_rotation(R, dtype):
    R = np_of(R)[0]
    assert_near(torch.from_numpy(R @ R.transpose(0, 2, 1)), np.eye(3), dtype)
    assert_near(torch.from_numpy(np.linalg.det(R)), 1.0, dtype)


def assert_matches_numpy(out, ref, weight, dtype, slack=1.0):
    """Errors and weighted aligned points always; R, s, t and every aligned point only for samples
    with >= 3 weighted points (otherwise the rotation about the line is legitimately arbitrary)."""
    R, s, t, aligned, err = out
    Rn, sn, tn, an, en = ref
    used = np.ones(an.shape[:2], bool) if weight is None else np_of(weight)[0] > 0
    assert_near(err, en, dtype, slack=slack)
    assert_near(aligned, an, dtype, where=used, slack=slack)
    generic = used.sum(-1) >= 3
    for ours, theirs in ((R, Rn), (s, sn), (t, tn), (aligned, an)):
        assert_near(ours, theirs, dtype, where=generic, slack=slack)


# --------------------------------------------------------------------------- correctness
SIZES = [(B, N) for B in (0, 1, 2, 3, 7, 1000) for N in (1, 2, 3, 5, 24, 54)] + [(1, 6890), (3, 6890)]


@pytest.mark.parametrize("B,N", SIZES)
@pytest.mark.parametrize("mask", [None, "bool", "float"])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_matches_numpy_reference(device, B, N, mask, dtype):
    rng = np.random.default_rng(1000 * B + N)
    pred, target, weight = make_inputs(rng, B, N, dtype, mask, device)
    ref = ref_np(pred, target, weight)
    native = run("native", pred, target, weight)
    assert [o.dtype for o in native] == [dtype] * 5 and native[3].shape == pred.shape
    assert_matches_numpy(native, ref, weight, dtype)
    # The torch reference works in the input dtype: float32 SVD of a nearly collinear 3-point
    # sample loses ~eps32 / (relative singular gap) ~ 1e-4 in R, hence the slack.
    slack = 100.0 if dtype == F32 else 1.0
    assert_matches_numpy(run("reference", pred, target, weight), ref, weight, dtype, slack=slack)
    if device.type == "cuda":  # CUDA kernel vs CPU kernel too
        cpu = run("native", pred.cpu(), target.cpu(), None if weight is None else weight.cpu())
        assert_near(native[4], np_of(cpu[4])[0], dtype)
        assert_near(native[3], np_of(cpu[3])[0], dtype)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_non_contiguous_inputs(device, dtype):
    rng = np.random.default_rng(7)
    B, N = 5, 24
    pred = to_torch(rng.normal(size=(B, 3, N)), dtype, device).transpose(1, 2)
    target = to_torch(rng.normal(size=(B, 2 * N, 3)), dtype, device)[:, ::2]
    weight = to_torch(rng.random((N, B)), dtype, device).T
    weight[1] = 0
    assert not (pred.is_contiguous() or target.is_contiguous() or weight.is_contiguous())
    out = run("native", pred, target, weight)
    assert_matches_numpy(out, ref_np(pred, target, weight), weight, dtype)
    dense = run("native", pred.contiguous(), target.contiguous(), weight.contiguous())
    for a, b in zip(out, dense):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # a stride-0 (expanded) target
    shared = target[:1].expand(B, N, 3)
    assert_matches_numpy(run("native", pred, shared, weight), ref_np(pred, shared, weight), weight, dtype)


@pytest.mark.parametrize("B,N", [(2, 3), (2, 24), (3, 3), (3, 24)])
def test_batch_of_2_or_3_equals_per_sample(B, N):
    """ROMP's batched Procrustes picks the transpose from the batch size and is wrong for B = 2, 3."""
    rng = np.random.default_rng(B * N)
    pred, target, weight = make_inputs(rng, B, N, F64, "float")
    weight[:] = torch.where(weight > 0, weight, 1.0)  # every sample generic
    batched = run("native", pred, target, weight)
    for b in range(B):
        single = run("native", pred[b:b + 1], target[b:b + 1], weight[b:b + 1])
        for a, one in zip(batched, single):
            torch.testing.assert_close(a[b:b + 1], one, rtol=1e-12, atol=1e-12)
    assert_matches_numpy(batched, ref_np(pred, target, weight), weight, F64)


# --------------------------------------------------------------------------- invariance
@pytest.mark.parametrize("dtype", [F32, F64])
def test_recovers_exact_similarity(device, dtype):
    rng = np.random.default_rng(11)
    B, N = 7, 24
    x = rng.normal(size=(B, N, 3))
    Q, s0, t0 = random_rotations(rng, B), rng.uniform(0.5, 2.0, B), rng.normal(size=(B, 3))
    y = s0[:, None, None] * x @ Q.transpose(0, 2, 1) + t0[:, None]
    pred, target = to_torch(x, dtype, device), to_torch(y, dtype, device)
    R, s, t, aligned, err = run("native", pred, target)
    assert_near(R, Q, dtype)
    assert_near(s, s0, dtype)
    assert_near(t, t0, dtype)
    assert_near(err, 0.0, dtype)
    assert_near(aligned, np_of(target)[0], dtype)


@pytest.mark.parametrize("path", PATHS)
def test_mirrored_target_gives_proper_rotation(device, path):
    rng = np.random.default_rng(12)
    pred, target, _ = make_inputs(rng, 6, 24, F64, device=device)
    target = target * torch.tensor([-1.0, 1.0, 1.0], dtype=F64, device=device)
    out = run(path, pred, target)
    assert_rotation(out[0], F64)
    assert_matches_numpy(out, ref_np(pred, target), None, F64)
    assert (out[4] > 0.05).all()  # a reflection cannot be undone by a rotation


# --------------------------------------------------------------------------- degenerate inputs
@pytest.mark.parametrize("path,dtype", [
    ("native", F32), ("native", F64), ("reference", F64), ("reference", F32),
])
def test_collapsed_prediction(device, path, dtype):
    """All points equal: R = I, s = 0, t = weighted target centroid, every aligned point = t."""
    rng = np.random.default_rng(13)
    B, N = 4, 5
    x = np.repeat(3 * rng.normal(size=(B, 1, 3)), N, axis=1)
    x[0] = 0.0  # zero second moment too
    pred, target = to_torch(x, dtype, device), to_torch(rng.normal(size=(B, N, 3)), dtype, device)
    weight = to_torch(rng.uniform(0.1, 2.0, (B, N)), dtype, device)
    R, s, t, aligned, err = run(path, pred, target, weight)
    Rn, sn, tn, an, en = ref_np(pred, target, weight)
    w, y = np_of(weight, target)
    centroid = (w[..., None] * y).sum(1) / w.sum(1)[:, None]
    assert (R == torch.eye(3, dtype=dtype, device=device)).all()
    assert (s == 0).all()
    assert_near(t, centroid, dtype)
    assert_near(aligned, centroid[:, None], dtype)
    assert_near(err, (w * np.linalg.norm(y - centroid[:, None], axis=-1)).sum(1) / w.sum(1), dtype)
    assert_near(err, en, dtype)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_collapsed_target(device, path, dtype):
    """Target points all equal: everything maps onto that point, error 0, R still a rotation."""
    rng = np.random.default_rng(14)
    pred = to_torch(rng.normal(size=(3, 6, 3)), dtype, device)
    target = to_torch(np.repeat(rng.normal(size=(3, 1, 3)), 6, axis=1), dtype, device)
    R, s, t, aligned, err = run(path, pred, target)
    assert_rotation(R, dtype)
    assert_near(s, 0.0, dtype)
    assert_near(aligned, np_of(target)[0], dtype)
    assert_near(err, 0.0, dtype)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_single_point(device, path, dtype):
    rng = np.random.default_rng(15)
    pred, target = (to_torch(rng.normal(size=(3, 1, 3)), dtype, device) for _ in range(2))
    R, s, t, aligned, err = run(path, pred, target)
    assert (R == torch.eye(3, dtype=dtype, device=device)).all()
    assert (s == 0).all() and (err == 0).all()
    assert torch.equal(t, target[:, 0]) and torch.equal(aligned, target)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_two_points(device, path, dtype):
    """Any two points map exactly onto any two: s = |y1 - y0| / |x1 - x0|, R(x1 - x0) || y1 - y0."""
    # Regression: an exact 2-point fit starts Newton on a double root; the AVX2+FMA build once
    # stepped off it on rounding noise (error 0.011, s 1.41404 for the first sample below).
    rng = np.random.default_rng(16)
    pred, target = (to_torch(rng.normal(size=(64, 2, 3)), dtype, device) for _ in range(2))
    pred[0] = torch.tensor([[0.0, 0, 0], [1, 0, 0]], device=device)
    target[0] = torch.tensor([[0.0, 0, 0], [-1, -1, 0]], device=device)
    R, s, t, aligned, err = run(path, pred, target)
    x, y = np_of(pred, target)
    dx, dy = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]
    assert_rotation(R, dtype)
    assert_near(s, np.linalg.norm(dy, axis=-1) / np.linalg.norm(dx, axis=-1), dtype)
    assert_near(torch.einsum("bij,bj->bi", R, pred[:, 1] - pred[:, 0]),
                dy / np.linalg.norm(dy, axis=-1, keepdims=True) * np.linalg.norm(dx, axis=-1, keepdims=True), dtype)
    assert_near(aligned, y, dtype)
    assert_near(err, 0.0, dtype)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_collinear_prediction(device, path, dtype):
    """Rotation about the line is arbitrary but deterministic; aligned points, s and error exact."""
    rng = np.random.default_rng(17)
    B, N = 4, 7
    direction = rng.normal(size=(B, 1, 3))
    x = rng.normal(size=(B, 1, 3)) + rng.normal(size=(B, N, 1)) * direction
    pred, target = to_torch(x, dtype, device), to_torch(rng.normal(size=(B, N, 3)), dtype, device)
    R, s, t, aligned, err = out = run(path, pred, target)
    Rn, sn, tn, an, en = ref_np(pred, target)
    assert_rotation(R, dtype)
    assert_near(s, sn, dtype)
    assert_near(aligned, an, dtype)
    assert_near(err, en, dtype)
    for a, b in zip(out, run(path, pred, target)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_coplanar_prediction(device, path, dtype):
    """A rank-2 cross-covariance still has a unique proper rotation: compare R directly."""
    rng = np.random.default_rng(18)
    B, N = 5, 12
    x = rng.normal(size=(B, N, 3)) * [1.0, 1.0, 0.0]
    x = x @ random_rotations(rng, B).transpose(0, 2, 1)
    pred, target = to_torch(x, dtype, device), to_torch(rng.normal(size=(B, N, 3)), dtype, device)
    out = run(path, pred, target)
    assert_rotation(out[0], dtype)
    assert_matches_numpy(out, ref_np(pred, target), None, dtype)


@pytest.mark.parametrize("path", PATHS)
def test_fewer_than_three_weighted_points(device, path):
    rng = np.random.default_rng(19)
    pred, target, _ = make_inputs(rng, 3, 24, F64, device=device)
    weight = torch.zeros(3, 24, dtype=torch.bool, device=device)
    weight[0, 5] = True
    weight[1, [2, 17]] = True  # sample 2 keeps no point
    R, s, t, aligned, err = run(path, pred, target, weight)
    assert_near(err, 0.0, F64)
    assert_near(aligned[weight], np_of(target[weight])[0], F64)
    assert_near(err, ref_np(pred, target, weight)[4], F64)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("wdtype", [torch.bool, F32, F64])
def test_all_weights_zero_is_identity(device, path, wdtype):
    rng = np.random.default_rng(20)
    pred, target, _ = make_inputs(rng, 3, 24, F64, device=device)
    pred[1, 3] = float("nan")  # ignored like any unweighted point
    R, s, t, aligned, err = run(path, pred, target, torch.zeros(3, 24, dtype=wdtype, device=device))
    assert torch.equal(R, torch.eye(3, dtype=F64, device=device).expand(3, 3, 3))
    assert (s == 1).all() and (t == 0).all() and (err == 0).all()
    torch.testing.assert_close(aligned, pred, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("path", PATHS)
def test_masked_non_finite_points_are_ignored(device, path):
    rng = np.random.default_rng(21)
    pred, target, weight = make_inputs(rng, 3, 24, F64, "float", device)
    weight[0, [3, 9]] = 0
    garbage_p, garbage_t = pred.clone(), target.clone()
    garbage_p[0, 3] = float("nan")
    garbage_t[0, 9] = float("inf")
    clean, dirty = run(path, pred, target, weight), run(path, garbage_p, garbage_t, weight)
    keep = torch.ones(3, 24, dtype=torch.bool, device=device)
    keep[0, 3] = False  # the NaN point itself is transformed to NaN by procrustes_align
    for a, b in zip(clean[:3] + clean[4:], dirty[:3] + dirty[4:]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(clean[3][keep], dirty[3][keep], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("path", PATHS)
def test_masked_nan_point_gradient_is_finite(path):
    rng = np.random.default_rng(22)
    pred, target, weight = make_inputs(rng, 3, 24, F64, "float")
    weight[0, 3] = 0
    pred[0, 3] = float("nan")
    pred.requires_grad_()
    with ops.use_reference() if path == "reference" else contextlib.nullcontext():
        grad, = torch.autograd.grad(ops.pa_mpjpe(pred, target, weight).sum(), pred)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("bad", ["pred", "target"])
def test_non_finite_weighted_point_poisons_only_its_sample(device, path, bad):
    rng = np.random.default_rng(23)
    pred, target, weight = make_inputs(rng, 4, 24, F64, "bool", device)
    weight[:] = True
    (pred if bad == "pred" else target)[1, 7, 2] = float("nan")
    (pred if bad == "pred" else target)[2, 0, 0] = float("inf")
    out = run(path, pred, target, weight)
    for o in out:
        assert torch.isnan(o[1:3]).all()
        assert torch.isfinite(o[[0, 3]]).all()
    ok = [0, 3]
    assert_matches_numpy(run(path, pred[ok], target[ok], weight[ok]), ref_np(pred[ok], target[ok]), None, F64)
    for o, alone in zip(out, run(path, pred[ok], target[ok], weight[ok])):
        torch.testing.assert_close(o[ok], alone, rtol=1e-12, atol=1e-12)
    p = pred.clone().requires_grad_()
    grad, = torch.autograd.grad(run(path, p, target, weight)[4].sum(), p)
    assert torch.isfinite(grad[ok]).all()


@pytest.mark.parametrize("bad", [-0.5, float("nan")])
def test_negative_or_nan_weight(device, bad):
    rng = np.random.default_rng(24)
    pred, target, weight = make_inputs(rng, 3, 24, F64, "float", device)
    weight[1, 5] = bad
    if device.type == "cpu":  # the wrappers check on CPU only (no host sync on CUDA)
        for f in (ops.pa_mpjpe, ops.procrustes_align, ops.similarity_transform):
            with pytest.raises(ValueError, match=rf"non-negative and not NaN, got {bad} at \[1, 5\]"):
                f(pred, target, weight)
        err = torch.ops.romp_fast.pa_mpjpe(pred, target, weight)
    else:
        err = ops.pa_mpjpe(pred, target, weight)
    assert torch.isnan(err[1]) and torch.isfinite(err[[0, 2]]).all()
    assert_near(err[[0, 2]], ref_np(pred[[0, 2]], target[[0, 2]], weight[[0, 2]])[4], F64)


# --------------------------------------------------------------------------- gradients
def isotropic_pair(dtype=F64):
    """24 points on the axes, symmetric, so K = X^T Y = diag(15, 15, 60.69): a repeated singular value."""
    pts = []
    for r in (1.0, 2.0, 0.5, 1.5):
        for axis, scale in ((0, 1.0), (1, 1.0), (2, 1.7)):
            v = np.zeros(3)
            v[axis] = r * scale
            pts += [v, -v]
    x = np.array(pts)
    y = x * [1.0, 1.0, 1.4] + [0.1, 0.2, 0.3]
    return x, y


def gradcheck_batch(device):
    """B = 6, N = 24: four generic samples with float weights (some zero), one with exactly
    repeated singular values, one nearly coplanar."""
    rng = np.random.default_rng(25)
    pred, target, weight = make_inputs(rng, 6, 24, F64, "float", device)
    weight[weight == 0] = 0.5
    weight[:4, ::5] = 0
    x, y = isotropic_pair()
    pred[4], target[4], weight[4] = to_torch(x, F64, device), to_torch(y, F64, device), 1.0
    pred[5, :, 2] *= 1e-3
    return pred.requires_grad_(), target, weight


@pytest.mark.parametrize("op", [ops.procrustes_align, ops.pa_mpjpe])
def test_gradcheck(device, op):
    pred, target, weight = gradcheck_batch(device)
    assert torch.autograd.gradcheck(lambda p: op(p, target, weight), (pred,))


def test_repeated_singular_values_gradient():
    """Autograd through torch.linalg.svd is NaN/inf here; the native backward is finite and exact."""
    x, y = isotropic_pair()
    sv = np.linalg.svd((x - x.mean(0)).T @ (y - y.mean(0)), compute_uv=False)
    assert sv[1] == sv[2]
    pred, target = to_torch(x[None]).requires_grad_(), to_torch(y[None])
    upstream = to_torch(np.random.default_rng(26).normal(size=(1, 24, 3)))
    for op, loss in ((ops.procrustes_align, lambda a: (a * upstream).sum()), (ops.pa_mpjpe, torch.sum)):
        with ops.use_reference():
            ref_grad, = torch.autograd.grad(loss(op(pred, target)), pred)
        assert not torch.isfinite(ref_grad).all()
        grad, = torch.autograd.grad(loss(op(pred, target)), pred)
        assert torch.isfinite(grad).all()
        assert torch.autograd.gradcheck(lambda p: loss(op(p, target)), (pred,))


@pytest.mark.parametrize("op", ["procrustes_align", "pa_mpjpe"])
def test_native_gradient_matches_reference_autograd(device, op):
    rng = np.random.default_rng(27)
    pred, target, weight = make_inputs(rng, 8, 24, F64, "float", device)
    pred.requires_grad_()
    f = getattr(ops, op)
    upstream = torch.randn(f(pred, target, weight).shape, dtype=F64, device=device)
    grad, = torch.autograd.grad((f(pred, target, weight) * upstream).sum(), pred)
    with ops.use_reference():
        ref, = torch.autograd.grad((f(pred, target, weight) * upstream).sum(), pred)
    diff = torch.linalg.vector_norm(grad - ref, dim=(1, 2))
    assert (diff <= 1e-7 * torch.linalg.vector_norm(ref, dim=(1, 2)) + 1e-14).all(), diff


@pytest.mark.parametrize("path", PATHS)
def test_similarity_transform_is_not_differentiable(path):
    pred, target, _ = make_inputs(np.random.default_rng(28), 2, 8)
    pred.requires_grad_()
    with ops.use_reference() if path == "reference" else contextlib.nullcontext():
        with pytest.raises(ValueError, match="not differentiable: use procrustes_align"):
            ops.similarity_transform(pred, target)
        with torch.no_grad():
            R, s, t = ops.similarity_transform(pred, target)
    assert not (R.requires_grad or s.requires_grad or t.requires_grad)


def test_similarity_transform_op_backward_raises():
    pred, target, _ = make_inputs(np.random.default_rng(28), 2, 8)
    R, s, t = torch.ops.romp_fast.similarity_transform(pred.requires_grad_(), target, None)
    with pytest.raises(RuntimeError, match="not differentiable"):
        (R.sum() + s.sum() + t.sum()).backward()


@pytest.mark.parametrize("op", [ops.similarity_transform, ops.procrustes_align, ops.pa_mpjpe])
def test_target_and_weight_must_not_require_grad(op):
    pred, target, weight = make_inputs(np.random.default_rng(29), 2, 8, mask="float")
    with pytest.raises(ValueError, match="detach target"):
        op(pred, target.requires_grad_(), weight)
    with pytest.raises(ValueError, match="weight is not differentiable"):
        op(pred, target.detach(), weight.requires_grad_())


# --------------------------------------------------------------------------- opcheck
@pytest.mark.parametrize("name", ["similarity_transform", "procrustes_align", "pa_mpjpe"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_opcheck(device, name, weighted, dtype):
    pred, target, weight = make_inputs(np.random.default_rng(30), 4, 24, dtype, "float", device)
    pred.requires_grad_(name != "similarity_transform")
    opcheck(getattr(torch.ops.romp_fast, name).default, (pred, target, weight if weighted else None))


@pytest.mark.parametrize("name", ["_procrustes_align_backward", "_pa_mpjpe_backward"])
@pytest.mark.parametrize("weighted", [False, True])
def test_opcheck_backward_ops(device, name, weighted):
    pred, target, weight = make_inputs(np.random.default_rng(31), 4, 24, F64, "float", device)
    grad = torch.randn(pred.shape if name == "_procrustes_align_backward" else pred.shape[:1],
                       dtype=F64, device=device)
    opcheck(getattr(torch.ops.romp_fast, name).default, (grad, pred, target, weight if weighted else None))


# --------------------------------------------------------------------------- errors
def _bad_inputs():
    p, t = torch.randn(4, 24, 3), torch.randn(4, 24, 3)
    return {
        "shape": ((torch.randn(4, 24, 2), torch.randn(4, 24, 2), None), r"pred must be \[B, N, 3\], got \[4, 24, 2\]"),
        "rank": ((torch.randn(24, 3), torch.randn(24, 3), None), r"pred must be \[B, N, 3\], got \[24, 3\]"),
        "target": ((p, torch.randn(4, 23, 3), None), r"target must match pred \[4, 24, 3\], got \[4, 23, 3\]"),
        "int": ((p.long(), t.long(), None), r"pred must be float32 or float64, got (torch\.int64|Long)"),
        "dtypes": ((p, t.double(), None), r"target dtype (torch\.float64|Double) differs from pred dtype (torch\.float32|Float)"),
        "weight": ((p, t, torch.ones(4, 23)), r"weight must be \[B, N\] = \[4, 24\], got \[4, 23\]"),
    }


@pytest.mark.parametrize("case", ["shape", "rank", "target", "int", "dtypes", "weight"])
@pytest.mark.parametrize("name", ["similarity_transform", "procrustes_align", "pa_mpjpe"])
def test_error_messages(name, case):
    args, msg = _bad_inputs()[case]
    with pytest.raises((ValueError, TypeError), match=f"{name}: {msg}"):
        getattr(ops, name)(*args)
    with pytest.raises(RuntimeError, match=f"{name}: {msg}"):
        getattr(torch.ops.romp_fast, name)(*args)


def test_error_messages_weight_dtype_and_grad():
    p, t = torch.randn(4, 24, 3), torch.randn(4, 24, 3)
    with pytest.raises(TypeError, match="weight must be bool or floating point, got torch.int64"):
        ops.pa_mpjpe(p, t, torch.ones(4, 24, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="pa_mpjpe: weight dtype Bool differs from pred dtype Float"):
        torch.ops.romp_fast.pa_mpjpe(p, t, torch.ones(4, 24, dtype=torch.bool))
    with pytest.raises(RuntimeError, match=r"_pa_mpjpe_backward: grad must be \[4\], got \[3\]"):
        torch.ops.romp_fast._pa_mpjpe_backward(torch.ones(3), p, t, None)
    with pytest.raises(RuntimeError, match="_procrustes_align_backward: grad must be Float on cpu, got Double"):
        torch.ops.romp_fast._procrustes_align_backward(torch.ones(4, 24, 3, dtype=F64), p, t, None)


# --------------------------------------------------------------------------- dispatch
def test_native_available():
    assert ops.native_available("cpu") and ops.native_available()
    cuda_kernel = torch._C._dispatch_has_kernel_for_dispatch_key("romp_fast::pa_mpjpe", "CUDA")
    assert ops.native_available("cuda") == cuda_kernel
    assert not ops.native_available("mps")


def test_use_reference_forces_reference(monkeypatch):
    calls = []
    original = ops.procrustes.pa_mpjpe_reference
    monkeypatch.setattr(ops.procrustes, "pa_mpjpe_reference", lambda *a: calls.append(1) or original(*a))
    pred, target, _ = make_inputs(np.random.default_rng(32), 2, 8)
    ops.pa_mpjpe(pred, target)
    assert calls == []
    with ops.use_reference():
        with ops.use_reference():
            ops.pa_mpjpe(pred, target)
        ops.pa_mpjpe(pred, target)
    assert calls == [1, 1]
    ops.pa_mpjpe(pred, target)
    assert calls == [1, 1]


def test_fallback_warns_once_per_op_and_device(monkeypatch):
    monkeypatch.setattr(ops, "_C", None)
    monkeypatch.setattr(ops, "_warned", set())
    pred, target, weight = make_inputs(np.random.default_rng(33), 3, 8, mask="bool")
    with pytest.warns(ops.ReferenceFallbackWarning) as record:
        errs = [ops.pa_mpjpe(pred, target, weight) for _ in range(3)]
        ops.procrustes_align(pred, target, weight)
        ops.procrustes_align(pred, target, weight)
    assert sorted(str(r.message).split(":")[0] for r in record) == [
        "romp_fast.ops.pa_mpjpe", "romp_fast.ops.procrustes_align"]
    assert_near(errs[0], ref_np(pred, target, weight)[4], F64)
