"""romp_fast.ops keypoint/temporal error ops (masked_joint_error, temporal_difference_error,
pairwise_displacement_error).

The oracles are the float64 numpy functions below, written from the module docstring's definitions
with explicit per-sample / per-frame / per-pair loops that pick the used entries by indexing (never
by zero-filling, as the torch references do). Native kernels and torch references are both compared
against them, and against each other for gradients; CUDA cases skip without a GPU.
"""
import contextlib

import numpy as np
import pytest
import torch
from torch.library import opcheck

import romp_fast.ops as ops
from romp_fast.ops import keypoint_losses as kl

F32, F64 = torch.float32, torch.float64
PATHS = ["native", "reference"]
NAN = float("nan")


# --------------------------------------------------------------------------- numpy references
def mje_np(pred, target, weight):
    """sum_j w_j |p_j - g_j| / sum_j w_j over w_j > 0, 0 where nothing is weighted; value and d/dpred."""
    B, J, D = pred.shape
    out, grad = np.zeros(B), np.zeros((B, J, D))
    for b in range(B):
        use = np.flatnonzero(weight[b] > 0)
        W = weight[b, use].sum()
        if W <= 0:
            continue
        for j in use:
            d = pred[b, j] - target[b, j]
            n = np.sqrt(d @ d)
            out[b] += weight[b, j] * n / W
            if n > 0:
                grad[b, j] = weight[b, j] * d / (n * W)
    return out, grad


STENCILS = {1: ((0, -1.0), (1, 1.0)), 2: ((-1, 1.0), (0, -2.0), (1, 1.0))}  # (frame offset, coefficient)


def tde_np(pred, target, valid, order):
    """Mean over valid stencils t and joints of |sum_q c_q (p_{t+o_q} - g_{t+o_q})|; value and d/dpred."""
    S, T, J, D = pred.shape
    stencil = STENCILS[order]
    out, grad = np.zeros(S), np.zeros((S, T, J, D))
    for s in range(S):
        frames = [t for t in range(T) if all(0 <= t + o < T and valid[s, t + o] > 0 for o, _ in stencil)]
        for t in frames:
            for j in range(J):
                d = sum(c * (pred[s, t + o, j] - target[s, t + o, j]) for o, c in stencil)
                n = np.sqrt(d @ d)
                out[s] += n / (J * len(frames))
                if n > 0:
                    for o, c in stencil:
                        grad[s, t + o, j] += c * d / (n * J * len(frames))
    return out, grad


def pde_np(pred, target, valid, scale):
    """Mean over ordered pairs i != j of valid frames of |s (p_i - p_j) - (g_i - g_j)|; value and d/dpred."""
    S, T, D = pred.shape
    out, grad = np.zeros(S), np.zeros((S, T, D))
    for s in range(S):
        frames = np.flatnonzero(valid[s] > 0)
        pairs = [(i, j) for i in frames for j in frames if i != j]
        for i, j in pairs:
            r = scale[s] * (pred[s, i] - pred[s, j]) - (target[s, i] - target[s, j])
            n = np.sqrt(r @ r)
            out[s] += n / len(pairs)
            if n > 0:
                grad[s, i] += scale[s] * r / (n * len(pairs))
                grad[s, j] -= scale[s] * r / (n * len(pairs))
    return out, grad


# --------------------------------------------------------------------------- helpers
def to_torch(a, dtype=F64, device="cpu"):
    a = np.ascontiguousarray(a)
    return torch.from_numpy(a).to(device=device, dtype=torch.bool if a.dtype == bool else dtype)


def np_of(*tensors):
    return [None if a is None else a.detach().cpu().double().numpy() for a in tensors]


def tol(dtype):
    return 1e-5 if dtype == F32 else 1e-11


def assert_near(got, ref, dtype, slack=1.0):
    """|got - ref| <= slack * tol * (1 + |ref|) elementwise, everything finite."""
    got = np_of(got)[0] if isinstance(got, torch.Tensor) else np.asarray(got, np.float64)
    ref = np.broadcast_to(np.asarray(ref, np.float64), got.shape)
    assert np.isfinite(got).all(), f"non-finite: {got[~np.isfinite(got)][:4]}"
    bad = np.abs(got - ref) > slack * tol(dtype) * (1 + np.abs(ref))
    assert not bad.any(), f"{bad.sum()} of {bad.size} off; worst {got[bad][:4]} vs {ref[bad][:4]}"


def path_ctx(path):
    return ops.use_reference() if path == "reference" else contextlib.nullcontext()


def make_mask(rng, shape, kind, p=0.7):
    """None, or a bool / float (0.1 .. 2) mask with ~30 % zeros; the caller adds empty rows."""
    if kind is None:
        return None
    m = rng.random(shape) < p
    return m * rng.uniform(0.1, 2.0, shape) if kind == "float" else m


def weights_np(mask, shape):
    return np.ones(shape) if mask is None else np.asarray(mask, np.float64)


def value_and_grad(f, pred, *args, upstream=None, **kw):
    p = pred.detach().clone().requires_grad_()
    out = f(p, *args, **kw)
    u = torch.ones_like(out) if upstream is None else upstream
    grad, = torch.autograd.grad((out * u).sum(), p) if out.numel() else (torch.zeros_like(p),)
    return out.detach(), grad


# --------------------------------------------------------------------------- masked_joint_error
def mje_inputs(rng, B, J, D, mask, dtype=F64, device="cpu"):
    pred, target = rng.normal(size=(B, J, D)), rng.normal(size=(B, J, D))
    w = make_mask(rng, (B, J), mask)
    if w is not None and B >= 2:
        w[B // 2] = 0  # a row with no weight
    t = lambda a: None if a is None else to_torch(a, dtype, device)  # noqa: E731
    return t(pred), t(target), t(w)


@pytest.mark.parametrize("B", [0, 1, 3, 17])
@pytest.mark.parametrize("J", [1, 24, 54])
@pytest.mark.parametrize("D", [2, 3])
@pytest.mark.parametrize("mask", [None, "bool", "float"])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_masked_joint_error_matches_numpy(device, B, J, D, mask, dtype):
    rng = np.random.default_rng(100 * B + 10 * J + D)
    pred, target, weight = mje_inputs(rng, B, J, D, mask, dtype, device)
    p, g = np_of(pred, target)
    ref, ref_grad = mje_np(p, g, weights_np(np_of(weight)[0], (B, J)))
    for path in PATHS:
        with path_ctx(path):
            out, grad = value_and_grad(ops.masked_joint_error, pred, target, weight)
        assert out.shape == (B,) and out.dtype == dtype and out.device == pred.device
        assert_near(out, ref, dtype)
        assert_near(grad, ref_grad, dtype, slack=10.0)
    if weight is not None and B >= 2:
        assert (out[B // 2] == 0).all() and (grad[B // 2] == 0).all()


@pytest.mark.parametrize("dtype", [F32, F64])
def test_masked_joint_error_non_contiguous(device, dtype):
    rng = np.random.default_rng(1)
    B, J, D = 6, 24, 3
    pred = to_torch(rng.normal(size=(J, B, D)), dtype, device).transpose(0, 1)
    target = to_torch(rng.normal(size=(B, J, 2 * D)), dtype, device)[..., ::2]
    weight = to_torch(rng.random((J, B)), dtype, device).T
    weight[2] = 0
    assert not (pred.is_contiguous() or target.is_contiguous() or weight.is_contiguous())
    ref, ref_grad = mje_np(*np_of(pred, target, weight))
    for path in PATHS:
        with path_ctx(path):
            out, grad = value_and_grad(ops.masked_joint_error, pred, target, weight)
        assert_near(out, ref, dtype)
        assert_near(grad, ref_grad, dtype, slack=10.0)
    dense = ops.masked_joint_error(pred.contiguous(), target.contiguous(), weight.contiguous())
    torch.testing.assert_close(ops.masked_joint_error(pred, target, weight), dense, rtol=0, atol=0)
    shared = target[:1].expand(B, J, D)  # stride 0
    assert_near(ops.masked_joint_error(pred, shared, weight), mje_np(*np_of(pred, shared, weight))[0], dtype)


def test_masked_joint_error_bool_equals_unit_float(device):
    rng = np.random.default_rng(2)
    pred, target, weight = mje_inputs(rng, 5, 24, 3, "bool", F64, device)
    torch.testing.assert_close(ops.masked_joint_error(pred, target, weight),
                               ops.masked_joint_error(pred, target, weight.double()), rtol=0, atol=0)
    torch.testing.assert_close(ops.masked_joint_error(pred, target),
                               ops.masked_joint_error(pred, target, torch.ones_like(weight)), rtol=0, atol=0)


# float32 with D = 2 or 3 runs a separate native kernel on CPUs with AVX-512 (16 joints per vector,
# flat 16-joint blocks across samples in the backward, streaming stores for large gradients), so
# these cases aim at its edges: J around multiples of 16, the 256-joint partial sums, the
# 2048-joint backward windows, thread ranges that start inside a 64-byte line.
@contextlib.contextmanager
def num_threads(n):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def dirty_mje_case(rng, B, J, D, dtype=F32):
    """Float weights with zeros, one all-zero row, NaN / inf coordinates under zero weight, and a
    weighted joint at exactly zero distance; plus an upstream gradient of mixed signs and zeros."""
    pred, target = rng.normal(size=(B, J, D)), rng.normal(size=(B, J, D))
    w = (rng.random((B, J)) < 0.7) * rng.uniform(0.1, 2.0, (B, J))
    w[B // 2] = 0
    off = w == 0
    pred[off] = np.where(rng.random(off.sum())[:, None] < 0.5, np.nan, np.inf)
    target[off & (rng.random((B, J)) < 0.5)] = -np.inf
    b, j = (B - 1) // 3, J // 2
    w[b, j] = 0.5
    pred[b, j] = target[b, j] = rng.normal(size=D)
    up = rng.normal(size=B)
    up[::4] = 0
    return to_torch(pred, dtype), to_torch(target, dtype), to_torch(w, dtype), to_torch(up, dtype), (b, j)


def clean(a, w):
    """a with the coordinates of zero-weight joints replaced by 0 (what the oracle may read)."""
    a = a.detach().double().numpy().copy()
    a[w.numpy() == 0] = 0
    return a


@pytest.mark.parametrize("J", [1, 2, 5, 15, 16, 17, 24, 31, 33, 54, 255, 256, 257, 300])
@pytest.mark.parametrize("D", [2, 3])
@pytest.mark.parametrize("B", [1, 7, 37])
def test_masked_joint_error_float32_kernel(B, J, D):
    rng = np.random.default_rng(1000 * J + 10 * B + D)
    pred, target, w, up, (b, j) = dirty_mje_case(rng, B, J, D)
    ref, ref_grad = mje_np(clean(pred, w), clean(target, w), w.double().numpy())
    out, grad = value_and_grad(ops.masked_joint_error, pred, target, w, upstream=up)
    assert out.dtype == F32 and grad.dtype == F32
    assert_near(out, ref, F32)
    assert_near(grad, ref_grad * up.double().numpy()[:, None, None], F32, slack=10.0)
    assert (grad[b, j] == 0).all()  # the zero subgradient at zero distance
    assert (grad[w == 0] == 0).all() and (grad[::4] == 0).all()
    assert out[B // 2] == 0


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("D", [2, 3])
def test_masked_joint_error_no_joints(dtype, D):
    pred = torch.zeros(5, 0, D, dtype=dtype)
    out, grad = value_and_grad(ops.masked_joint_error, pred, pred.clone(), torch.zeros(5, 0, dtype=dtype))
    assert (out == 0).all() and out.shape == (5,) and grad.shape == pred.shape


@pytest.mark.parametrize("J, D", [(24, 3), (17, 3), (24, 2), (54, 2)])
def test_masked_joint_error_float32_large_batch_any_threads(J, D):
    """Over 4 MB of gradient (streaming stores); 1, 2 and 3 threads give bit-identical results,
    including ranges whose first joint is not on a 16-joint boundary (J = 17)."""
    rng = np.random.default_rng(J + D)
    B = 30011
    pred, target, w, up, _ = dirty_mje_case(rng, B, J, D)
    results = []
    for n in (1, 2, 3):
        with num_threads(n):
            results.append(value_and_grad(ops.masked_joint_error, pred, target, w, upstream=up))
    for out, grad in results[1:]:
        assert torch.equal(out, results[0][0]) and torch.equal(grad, results[0][1])
    p64, t64 = (torch.from_numpy(clean(x, w)) for x in (pred, target))
    ref, ref_grad = value_and_grad(ops.masked_joint_error, p64, t64, w.double(), upstream=up.double())
    assert_near(results[0][0], np_of(ref)[0], F32)
    assert_near(results[0][1], np_of(ref_grad)[0], F32, slack=10.0)


@pytest.mark.parametrize("D", [2, 3])
def test_masked_joint_error_float32_long_samples(D):
    """J = 5000: partial sums over 256-joint chunks, samples spanning several backward windows;
    distances over four orders of magnitude keep the float32 sums honest."""
    rng = np.random.default_rng(D)
    B, J = 3, 5000
    target = rng.normal(size=(B, J, D))
    pred = target + rng.normal(size=(B, J, D)) * 10.0 ** rng.uniform(-3, 1, (B, J, 1))
    w = rng.uniform(0.0, 3.0, (B, J)) * (rng.random((B, J)) < 0.9)
    pred, target, w = (to_torch(a, F32) for a in (pred, target, w))
    ref, ref_grad = mje_np(*np_of(pred, target, w))
    out, grad = value_and_grad(ops.masked_joint_error, pred, target, w)
    assert_near(out, ref, F32)
    assert_near(grad, ref_grad, F32, slack=10.0)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("D", [1, 5, 8])
def test_masked_joint_error_kernel_other_dims(dtype, D):
    """D outside 2, 3 (kernel level only) takes the portable loops in float32 as well."""
    rng = np.random.default_rng(D)
    pred, target, w, up, (b, j) = dirty_mje_case(rng, 9, 19, D, dtype)
    ref, ref_grad = mje_np(clean(pred, w), clean(target, w), w.double().numpy())
    out = torch.ops.romp_fast.masked_joint_error(pred, target, w)
    grad = torch.ops.romp_fast._masked_joint_error_backward(up, pred, target, w)
    assert_near(out, ref, dtype)
    assert_near(grad, ref_grad * up.double().numpy()[:, None, None], dtype, slack=10.0)
    assert (grad[b, j] == 0).all()


# --------------------------------------------------------------------------- temporal_difference_error
def tde_inputs(rng, S, T, J, D, mask, dtype=F64, device="cpu"):
    """Smooth-ish tracks (a random walk) with noise; the valid mask has an all-invalid track."""
    pred = np.cumsum(rng.normal(size=(S, T, J, D)), axis=1)
    target = pred + rng.normal(scale=0.5, size=(S, T, J, D))
    v = make_mask(rng, (S, T), mask, p=0.8)
    if v is not None and S >= 2:
        v[1] = 0
    t = lambda a: None if a is None else to_torch(a, dtype, device)  # noqa: E731
    return t(pred), t(target), t(v)


@pytest.mark.parametrize("T", [1, 2, 3, 8, 33])
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("layout", ["STJD", "STD"])
@pytest.mark.parametrize("mask", [None, "bool", "float"])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_temporal_difference_error_matches_numpy(device, T, order, layout, mask, dtype):
    rng = np.random.default_rng(1000 * T + 10 * order + len(layout))
    S, J, D = 5, (1 if layout == "STD" else 7), 3
    pred, target, valid = tde_inputs(rng, S, T, J, D, mask, dtype, device)
    ref, ref_grad = tde_np(*np_of(pred, target), weights_np(np_of(valid)[0], (S, T)), order)
    if layout == "STD":
        pred, target = pred[:, :, 0], target[:, :, 0]
        ref_grad = ref_grad[:, :, 0]
    for path in PATHS:
        with path_ctx(path):
            out, grad = value_and_grad(ops.temporal_difference_error, pred, target, valid, order)
        assert out.shape == (S,) and out.dtype == dtype and grad.shape == pred.shape
        assert_near(out, ref, dtype, slack=10.0)
        assert_near(grad, ref_grad, dtype, slack=10.0)
    if T <= order:
        assert (out == 0).all() and (grad == 0).all()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("order", [1, 2])
def test_temporal_invalid_frames_break_stencils(device, path, order):
    rng = np.random.default_rng(3)
    S, T, J, D = 4, 12, 5, 3
    pred, target, _ = tde_inputs(rng, S, T, J, D, None, F64, device)
    valid = torch.ones(S, T, dtype=torch.bool, device=device)
    valid[0, ::2] = False  # every other frame: no stencil of either order survives
    valid[1, 5] = False  # one gap: 2 (order 1) or 3 (order 2) stencils lost
    valid[2, 1::3] = False  # order 1 keeps pairs (2, 3), (5, 6), ...; order 2 keeps none
    with path_ctx(path):
        out, grad = value_and_grad(ops.temporal_difference_error, pred, target, valid, order)
    ref, ref_grad = tde_np(*np_of(pred, target, valid), order)
    assert_near(out, ref, F64)
    assert_near(grad, ref_grad, F64)
    assert out[0] == 0 and (grad[0] == 0).all()
    assert (out[2] == 0) == (order == 2)
    assert (grad[1, 5] == 0).all()  # an invalid frame gets no gradient
    # dropping frame 5 must equal the mean over the surviving stencils of the two pieces
    lost = {1: (4, 5), 2: (4, 5, 6)}[order]
    per_t = [tde_np(*np_of(pred[1:2, t - (order == 2):t + 2], target[1:2, t - (order == 2):t + 2]),
                    np.ones((1, order + 1)), order)[0][0]
             for t in range(order == 2, T - 1) if t not in lost]
    assert_near(out[1], np.mean(per_t), F64)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_temporal_non_contiguous(device, dtype):
    rng = np.random.default_rng(4)
    S, T, J, D = 3, 9, 6, 3
    pred = to_torch(rng.normal(size=(T, S, J, D)), dtype, device).transpose(0, 1)
    target = to_torch(rng.normal(size=(S, T, J, 2 * D)), dtype, device)[..., 1::2]
    valid = to_torch(rng.random((T, S)) < 0.8, dtype, device).T
    assert not (pred.is_contiguous() or target.is_contiguous() or valid.is_contiguous())
    for order in (1, 2):
        ref, ref_grad = tde_np(*np_of(pred, target, valid), order)
        for path in PATHS:
            with path_ctx(path):
                out, grad = value_and_grad(ops.temporal_difference_error, pred, target, valid, order)
            assert_near(out, ref, dtype, slack=10.0)
            assert_near(grad, ref_grad, dtype, slack=10.0)


def test_temporal_default_order_is_acceleration():
    rng = np.random.default_rng(5)
    pred, target, valid = tde_inputs(rng, 3, 10, 4, 3, "bool")
    torch.testing.assert_close(ops.temporal_difference_error(pred, target, valid),
                               ops.temporal_difference_error(pred, target, valid, order=2), rtol=0, atol=0)


@pytest.mark.parametrize("path", PATHS)
def test_temporal_matches_vibe_style_acceleration_error(path):
    """Unmasked order 2 is VIBE's compute_error_accel (mean over joints and frames of |accel diff|)."""
    rng = np.random.default_rng(6)
    pred, target, _ = tde_inputs(rng, 4, 20, 14, 3, None)
    acc = lambda x: x[:, :-2] - 2 * x[:, 1:-1] + x[:, 2:]  # noqa: E731
    expected = torch.linalg.norm(acc(pred) - acc(target), dim=-1).mean((1, 2))
    with path_ctx(path):
        torch.testing.assert_close(ops.temporal_difference_error(pred, target), expected, rtol=1e-12, atol=0)


# --------------------------------------------------------------------------- pairwise_displacement_error
def pde_inputs(rng, S, T, D, mask, dtype=F64, device="cpu"):
    """World trajectories; pred is a rescaled noisy copy; one track all invalid, one with 1 valid frame."""
    target = np.cumsum(rng.normal(scale=0.3, size=(S, T, D)), axis=1)
    pred = target / rng.uniform(0.5, 2.0, (S, 1, 1)) + rng.normal(scale=0.1, size=(S, T, D))
    v = make_mask(rng, (S, T), mask)
    if v is not None and S >= 3:
        v[1] = 0
        v[2] = 0
        v[2, T // 2] = 1.5 if mask == "float" else True
    t = lambda a: None if a is None else to_torch(a, dtype, device)  # noqa: E731
    return t(pred), t(target), t(v)


def scale_arg(kind, rng, S, dtype, device):
    """(argument passed, numpy per-track scale)."""
    if kind is None:
        return None, np.ones(S)
    if kind == "float":
        return 1.7, np.full(S, 1.7)
    if kind == "0-dim":
        return torch.tensor(0.8, dtype=dtype, device=device), np.full(S, 0.8)
    s = rng.uniform(0.5, 2.0, S)
    return to_torch(s, dtype, device), np_of(to_torch(s, dtype))[0]


@pytest.mark.parametrize("T", [1, 2, 5, 64])
@pytest.mark.parametrize("D", [2, 3])
@pytest.mark.parametrize("scale", [None, "float", "0-dim", "per-track"])
@pytest.mark.parametrize("mask", [None, "bool", "float"])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_pairwise_displacement_error_matches_numpy(device, T, D, scale, mask, dtype):
    rng = np.random.default_rng(100 * T + D)
    S = 5
    pred, target, valid = pde_inputs(rng, S, T, D, mask, dtype, device)
    s_arg, s_np = scale_arg(scale, rng, S, dtype, device)
    ref, ref_grad = pde_np(*np_of(pred, target), weights_np(np_of(valid)[0], (S, T)), s_np)
    for path in PATHS:
        with path_ctx(path):
            out, grad = value_and_grad(ops.pairwise_displacement_error, pred, target, valid, s_arg)
        assert out.shape == (S,) and out.dtype == dtype and grad.shape == pred.shape
        assert_near(out, ref, dtype, slack=10.0)
        assert_near(grad, ref_grad, dtype, slack=10.0)
    if valid is not None:  # tracks 1 (no valid frame) and 2 (one) score 0 with a zero gradient
        assert (out[1:3] == 0).all() and (grad[1:3] == 0).all()
    if T < 2:
        assert (out == 0).all() and (grad == 0).all()


@pytest.mark.parametrize("dtype", [F32, F64])
def test_pairwise_non_contiguous(device, dtype):
    rng = np.random.default_rng(7)
    S, T, D = 4, 11, 3
    pred = to_torch(rng.normal(size=(T, S, D)), dtype, device).transpose(0, 1)
    target = to_torch(rng.normal(size=(S, 2 * T, D)), dtype, device)[:, ::2]
    valid = to_torch(rng.random((T, S)) < 0.7, dtype, device).T
    scale = to_torch(rng.uniform(0.5, 2, 2 * S), dtype, device)[::2]
    assert not any(x.is_contiguous() for x in (pred, target, valid, scale))
    ref, ref_grad = pde_np(*np_of(pred, target, valid, scale))
    for path in PATHS:
        with path_ctx(path):
            out, grad = value_and_grad(ops.pairwise_displacement_error, pred, target, valid, scale)
        assert_near(out, ref, dtype, slack=10.0)
        assert_near(grad, ref_grad, dtype, slack=10.0)


@pytest.mark.parametrize("path", PATHS)
def test_pairwise_is_symmetric_and_translation_invariant(path):
    """Shifting a whole track (pred or target) changes no displacement; reversing time changes nothing."""
    rng = np.random.default_rng(8)
    pred, target, valid = pde_inputs(rng, 4, 16, 3, "bool")
    scale = to_torch(rng.uniform(0.5, 2, 4))
    with path_ctx(path):
        base = ops.pairwise_displacement_error(pred, target, valid, scale)
        shifted = ops.pairwise_displacement_error(pred + torch.randn(4, 1, 3, dtype=F64),
                                                  target - torch.randn(4, 1, 3, dtype=F64), valid, scale)
        flipped = ops.pairwise_displacement_error(pred.flip(1), target.flip(1), valid.flip(1), scale)
    torch.testing.assert_close(shifted, base, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(flipped, base, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- shared conventions
OPS = ["masked_joint_error", "temporal_difference_error", "pairwise_displacement_error"]


def generic_case(name, device="cpu", dtype=F64, seed=9):
    """(pred, rest-of-args) with masks that drop some entries; distances are away from zero."""
    rng = np.random.default_rng(seed)
    if name == "masked_joint_error":
        pred, target, w = mje_inputs(rng, 4, 6, 3, "float", dtype, device)
        return pred, (target, w)
    if name == "temporal_difference_error":
        pred, target, v = tde_inputs(rng, 3, 7, 4, 3, "bool", dtype, device)
        v[0, 3] = False
        return pred, (target, v, 2)
    pred, target, v = pde_inputs(rng, 3, 6, 3, "float", dtype, device)
    v[0, 2] = 0
    return pred, (target, v, to_torch(rng.uniform(0.5, 2.0, 3), dtype, device))


def mask_of(name, args):
    return args[1]


def broadcast_mask(pred, m):
    """[B, J] / [S, T] mask -> pred's shape (True where the entry is used)."""
    m = m > 0
    return m.reshape(m.shape + (1,) * (pred.dim() - m.dim())).expand(pred.shape)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", OPS)
def test_empty_batch(device, path, name):
    pred, args = generic_case(name, device)
    pred, args = pred[:0], tuple(a[:0] if isinstance(a, torch.Tensor) else a for a in args)
    with path_ctx(path):
        out, grad = value_and_grad(getattr(ops, name), pred, *args)
    assert out.shape == (0,) and grad.shape == pred.shape


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", OPS)
def test_nan_in_masked_entries_is_ignored(device, path, name):
    pred, args = generic_case(name, device)
    unused = ~broadcast_mask(pred, mask_of(name, args))
    assert unused.any()
    dirty_p, dirty_t = pred.clone(), args[0].clone()
    dirty_p[unused] = NAN
    dirty_t[unused] = float("inf")
    f = getattr(ops, name)
    with path_ctx(path):
        clean, clean_grad = value_and_grad(f, pred, *args)
        out, grad = value_and_grad(f, dirty_p, dirty_t, *args[1:])
    torch.testing.assert_close(out, clean, rtol=1e-12, atol=1e-12)
    assert torch.isfinite(grad).all() and (grad[unused] == 0).all()
    torch.testing.assert_close(grad, clean_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("wdtype", [torch.bool, F32, F64])
def test_all_masked_is_zero_with_zero_gradient(device, path, name, wdtype):
    pred, args = generic_case(name, device)
    pred = pred.clone()
    pred[0] = NAN  # nothing of it is used
    mask = torch.zeros(args[1].shape, dtype=wdtype, device=device)
    with path_ctx(path):
        out, grad = value_and_grad(getattr(ops, name), pred, args[0], mask, *args[2:])
    assert (out == 0).all() and (grad == 0).all()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", OPS)
def test_gradient_at_zero_distance_is_zero(device, path, name):
    """Exact zeros of |.|: pred = target (plus, for the temporal ops, motion the op cannot see)."""
    pred, args = generic_case(name, device)
    target = args[0]
    if name == "masked_joint_error":
        pred = target.clone()
        pred[1, 3:] += 0.5  # sample 1 keeps some non-zero distances
    elif name == "temporal_difference_error":
        t = torch.arange(pred.shape[1], dtype=F64, device=device)[None, :, None, None]
        pred = target + 0.3 + 0.1 * t  # constant velocity: zero acceleration difference
    else:
        pred = target + torch.tensor([0.2, -1.0, 3.0], dtype=F64, device=device)  # a constant shift
        args = args[:2] + (1.0,)
    f = getattr(ops, name)
    with path_ctx(path):
        out, grad = value_and_grad(f, pred, *args)
    assert torch.isfinite(grad).all()
    if name == "masked_joint_error":
        assert (out[[0, 2, 3]] == 0).all() and (grad[[0, 2, 3]] == 0).all() and (grad[1, :3] == 0).all()
        assert out[1] > 0
    else:
        assert_near(out, 0.0, F64, slack=1e3)
        # rounding may leave |d| ~ 1e-16 > 0, whose unit vector is bounded by the stencil, not NaN
        assert (grad.abs() <= 4.0).all()
    if name != "masked_joint_error":  # bit-exact zeros where no rounding is involved
        zero_p = target.clone()
        with path_ctx(path):
            out, grad = value_and_grad(f, zero_p, *args)
        assert (out == 0).all() and (grad == 0).all()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", OPS)
def test_gradcheck(device, path, name):
    pred, args = generic_case(name, device)
    f = getattr(ops, name)
    with path_ctx(path):
        assert torch.autograd.gradcheck(lambda p: f(p, *args), (pred.requires_grad_(),))


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", OPS)
def test_native_gradient_matches_reference_autograd(device, name, dtype):
    pred, args = generic_case(name, device, dtype, seed=10)
    f = getattr(ops, name)
    upstream = torch.randn(pred.shape[0], dtype=dtype, device=device)
    out, grad = value_and_grad(f, pred, *args, upstream=upstream)
    with ops.use_reference():
        ref, ref_grad = value_and_grad(f, pred, *args, upstream=upstream)
    assert_near(out, np_of(ref)[0], dtype, slack=10.0)
    assert_near(grad, np_of(ref_grad)[0], dtype, slack=10.0)


@pytest.mark.parametrize("name", OPS)
def test_not_differentiable_in_target_but_usable_under_no_grad(name):
    pred, args = generic_case(name)
    target = args[0].clone().requires_grad_()
    with torch.no_grad():
        ops_out = getattr(ops, name)(pred, target, *args[1:])
    torch.testing.assert_close(ops_out, getattr(ops, name)(pred, *args))


@pytest.mark.parametrize("name", OPS)
def test_large_batch_matches_reference(device, name):
    """Enough samples for several parallel chunks; the reference was checked against numpy above."""
    rng = np.random.default_rng(13)
    if name == "masked_joint_error":
        pred, *args = mje_inputs(rng, 3001, 24, 3, "float", F64, device)
    elif name == "temporal_difference_error":
        pred, *args = tde_inputs(rng, 301, 40, 24, 3, "bool", F64, device)
        args.append(2)
    else:
        pred, *args = pde_inputs(rng, 301, 64, 3, "float", F64, device)
        args.append(to_torch(rng.uniform(0.5, 2.0, 301), F64, device))
    f = getattr(ops, name)
    upstream = torch.randn(pred.shape[0], dtype=F64, device=device)
    out, grad = value_and_grad(f, pred, *args, upstream=upstream)
    with ops.use_reference():
        ref, ref_grad = value_and_grad(f, pred, *args, upstream=upstream)
    assert_near(out, np_of(ref)[0], F64, slack=10.0)
    assert_near(grad, np_of(ref_grad)[0], F64, slack=10.0)


# --------------------------------------------------------------------------- opcheck
def opcheck_args(name, device, dtype):
    """Kernel-level arguments (masks as pred's dtype, scale as [S])."""
    pred, args = generic_case(name, device, dtype, seed=11)
    args = tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.dtype == torch.bool else a for a in args)
    return pred, args


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", OPS)
def test_opcheck(device, name, dtype):
    pred, args = opcheck_args(name, device, dtype)
    opcheck(getattr(torch.ops.romp_fast, name).default, (pred.requires_grad_(),) + args)
    # a permuted (non-contiguous) pred through the forward op and its autograd formula
    perm = pred.detach().transpose(0, 1).contiguous().transpose(0, 1).requires_grad_()
    opcheck(getattr(torch.ops.romp_fast, name).default, (perm,) + args)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", OPS)
def test_opcheck_backward_ops(device, name, dtype):
    pred, args = opcheck_args(name, device, dtype)
    grad = torch.randn(pred.shape[0], dtype=dtype, device=device)
    opcheck(getattr(torch.ops.romp_fast, f"_{name}_backward").default, (grad, pred) + args)


@pytest.mark.parametrize("name", OPS)
def test_backward_fake_kernel_strides_match_kernel(name):
    """Regression: the fakes once kept a permuted pred's strides while the kernels return contiguous
    tensors, which broke torch.compile of the losses on such inputs."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    pred, args = opcheck_args(name, "cpu", F64)
    perm = pred.transpose(0, 1).contiguous().transpose(0, 1)
    grad = torch.randn(pred.shape[0], dtype=F64)
    op = getattr(torch.ops.romp_fast, f"_{name}_backward")
    real = op(grad, perm, *args)
    with FakeTensorMode() as mode:
        fake = op(*(mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in (grad, perm) + args))
    assert fake.shape == real.shape
    assert fake.stride() == real.stride(), f"fake {fake.stride()} vs kernel {real.stride()}"


# --------------------------------------------------------------------------- errors
def _wrapper_errors():
    p3, p2 = torch.zeros(2, 5, 3), torch.zeros(2, 5, 2)
    tr = torch.zeros(2, 6, 4, 3)
    tk = torch.zeros(3, 6, 3)
    grad_t = lambda x: x.clone().requires_grad_()  # noqa: E731
    mje, tde, pde = ops.masked_joint_error, ops.temporal_difference_error, ops.pairwise_displacement_error
    return [
        (mje, (torch.zeros(2, 5), torch.zeros(2, 5)), {}, ValueError,
         r"masked_joint_error: pred must be \[B, J, 2\] or \[B, J, 3\], got \[2, 5\]"),
        (mje, (torch.zeros(2, 5, 4), torch.zeros(2, 5, 4)), {}, ValueError,
         r"pred must be \[B, J, 2\] or \[B, J, 3\], got \[2, 5, 4\]"),
        (mje, (torch.zeros(2, 5, 1), torch.zeros(2, 5, 1)), {}, ValueError, r"got \[2, 5, 1\]"),
        (mje, (p3.long(), p3.long()), {}, TypeError,
         r"masked_joint_error: pred must be float32 or float64, got torch\.int64"),
        (mje, (p3.half(), p3.half()), {}, TypeError, r"pred must be float32 or float64, got torch\.float16"),
        (mje, (p3, p2), {}, ValueError, r"masked_joint_error: target must match pred \[2, 5, 3\], got \[2, 5, 2\]"),
        (mje, (p3, p3.double()), {}, TypeError,
         r"target must be torch\.float32 on cpu, got torch\.float64 on cpu"),
        (mje, (p3, p3, torch.ones(2, 4)), {}, ValueError, r"masked_joint_error: weight must be \[2, 5\], got \[2, 4\]"),
        (mje, (p3, p3, torch.ones(2, 5, dtype=torch.int64)), {}, TypeError,
         r"weight must be bool or floating point, got torch\.int64"),
        (mje, (p3, p3, torch.full((2, 5), -1.0)), {}, ValueError, r"weight must be non-negative and not NaN"),
        (mje, (p3, p3, torch.full((2, 5), NAN)), {}, ValueError, r"weight must be non-negative and not NaN"),
        (mje, (p3, grad_t(p3)), {}, ValueError, r"masked_joint_error: differentiable in pred only; detach target"),
        (mje, (p3, p3, grad_t(torch.ones(2, 5))), {}, ValueError, r"differentiable in pred only; detach weight"),
        (tde, (torch.zeros(2, 6), torch.zeros(2, 6)), {}, ValueError,
         r"temporal_difference_error: pred must be \[S, T, J, D\] or \[S, T, D\], got \[2, 6\]"),
        (tde, (torch.zeros(1, 2, 6, 4, 3),) * 2, {}, ValueError, r"got \[1, 2, 6, 4, 3\]"),
        (tde, (tr, tr), {"order": 3}, ValueError,
         r"temporal_difference_error: order must be 1 \(velocity\) or 2 \(acceleration\), got 3"),
        (tde, (tr, tr), {"order": 0}, ValueError, r"order must be 1 \(velocity\) or 2 \(acceleration\), got 0"),
        (tde, (tr.int(), tr.int()), {}, TypeError, r"pred must be float32 or float64, got torch\.int32"),
        (tde, (tr, tr[..., :2]), {}, ValueError, r"target must match pred \[2, 6, 4, 3\], got \[2, 6, 4, 2\]"),
        (tde, (tr, tr, torch.ones(2, 5)), {}, ValueError, r"temporal_difference_error: valid must be \[2, 6\], got \[2, 5\]"),
        (tde, (tr, tr, torch.ones(6, 2).T[:, :5]), {}, ValueError, r"valid must be \[2, 6\], got \[2, 5\]"),
        (tde, (tr, tr, torch.ones(2, 6, dtype=torch.uint8)), {}, TypeError,
         r"valid must be bool or floating point, got torch\.uint8"),
        (tde, (tr, grad_t(tr)), {}, ValueError, r"temporal_difference_error: differentiable in pred only; detach target"),
        (tde, (tr, tr, grad_t(torch.ones(2, 6))), {}, ValueError, r"detach valid"),
        (pde, (tr, tr), {}, ValueError, r"pairwise_displacement_error: pred must be \[S, T, D\], got \[2, 6, 4, 3\]"),
        (pde, (tk, tk.double()), {}, TypeError, r"target must be torch\.float32 on cpu, got torch\.float64 on cpu"),
        (pde, (tk, tk, torch.ones(3, 7)), {}, ValueError, r"pairwise_displacement_error: valid must be \[3, 6\], got \[3, 7\]"),
        (pde, (tk, tk, torch.full((3, 6), -2.0)), {}, ValueError, r"valid must be non-negative and not NaN"),
        (pde, (tk, tk), {"scale": torch.ones(2)}, ValueError,
         r"pairwise_displacement_error: scale must be a number or \[S\] = \[3\], got \[2\]"),
        (pde, (tk, tk), {"scale": torch.ones(3, 1)}, ValueError, r"scale must be a number or \[S\] = \[3\], got \[3, 1\]"),
        (pde, (tk, tk), {"scale": grad_t(torch.ones(3))}, ValueError,
         r"pairwise_displacement_error: differentiable in pred only; detach scale"),
        (pde, (tk, grad_t(tk)), {}, ValueError, r"detach target"),
    ]


@pytest.mark.parametrize("i", range(len(_wrapper_errors())))
@pytest.mark.parametrize("path", PATHS)
def test_wrapper_error_messages(path, i):
    f, args, kw, exc, msg = _wrapper_errors()[i]
    with path_ctx(path), pytest.raises(exc, match=msg):
        f(*args, **kw)


def _kernel_errors():
    o = torch.ops.romp_fast
    p3, w = torch.zeros(2, 5, 3), torch.ones(2, 5)
    tr, v = torch.zeros(2, 6, 4, 3), torch.ones(2, 6)
    tk, s = torch.zeros(2, 6, 3), torch.ones(2)
    return [
        (o.masked_joint_error, (torch.zeros(2, 5), torch.zeros(2, 5), w),
         r"masked_joint_error: pred must be \[B, J, D\] with 1 <= D <= 8, got \[2, 5\]"),
        (o.masked_joint_error, (torch.zeros(2, 5, 9), torch.zeros(2, 5, 9), w),
         r"pred must be \[B, J, D\] with 1 <= D <= 8, got \[2, 5, 9\]"),
        (o.masked_joint_error, (p3.long(), p3.long(), w.long()),
         r"masked_joint_error: pred must be float32 or float64, got Long"),
        (o.masked_joint_error, (p3, p3[..., :2], w),
         r"masked_joint_error: target must match pred \[2, 5, 3\] Float on cpu, got \[2, 5, 2\] Float on cpu"),
        (o.masked_joint_error, (p3, p3.double(), w),
         r"target must match pred \[2, 5, 3\] Float on cpu, got \[2, 5, 3\] Double on cpu"),
        (o.masked_joint_error, (p3, p3, w.bool()),
         r"masked_joint_error: weight/valid must be \[2, 5\] Float on cpu, got \[2, 5\] Bool on cpu"),
        (o.masked_joint_error, (p3, p3, w[:, :4]), r"weight/valid must be \[2, 5\] Float on cpu, got \[2, 4\] Float"),
        (o._masked_joint_error_backward, (torch.ones(3), p3, p3, w),
         r"_masked_joint_error_backward: grad must be \[2\], got \[3\]"),
        (o._masked_joint_error_backward, (torch.ones(2).double(), p3, p3, w),
         r"_masked_joint_error_backward: grad must be Float on cpu, got Double on cpu"),
        (o._masked_joint_error_backward, (torch.ones(2), p3, p3, w.double()),
         r"_masked_joint_error_backward: weight/valid must be \[2, 5\] Float on cpu, got \[2, 5\] Double"),
        (o.temporal_difference_error, (tk, tk, v, 2),
         r"temporal_difference_error: pred must be \[S, T, J, D\] with 1 <= D <= 8, got \[2, 6, 3\]"),
        (o.temporal_difference_error, (tr, tr, v, 3), r"temporal_difference_error: order must be 1 or 2, got 3"),
        (o.temporal_difference_error, (tr, tr, v, 0), r"order must be 1 or 2, got 0"),
        (o.temporal_difference_error, (tr, tr, v[:, :5], 1),
         r"temporal_difference_error: weight/valid must be \[2, 6\] Float on cpu, got \[2, 5\] Float on cpu"),
        (o.temporal_difference_error, (tr.half(), tr.half(), v.half(), 1),
         r"pred must be float32 or float64, got Half"),
        (o._temporal_difference_error_backward, (torch.ones(2), tr, tr, v, 5), r"order must be 1 or 2, got 5"),
        (o._temporal_difference_error_backward, (torch.ones(2, 1), tr, tr, v, 2),
         r"_temporal_difference_error_backward: grad must be \[2\], got \[2, 1\]"),
        (o.pairwise_displacement_error, (tr, tr, v, s),
         r"pairwise_displacement_error: pred must be \[B, J, D\] with 1 <= D <= 8, got \[2, 6, 4, 3\]"),
        (o.pairwise_displacement_error, (tk, tk, v, torch.ones(())),
         r"pairwise_displacement_error: scale must be \[2\] Float on cpu, got \[\] Float on cpu"),
        (o.pairwise_displacement_error, (tk, tk, v, torch.ones(3)), r"scale must be \[2\] Float on cpu, got \[3\] Float"),
        (o.pairwise_displacement_error, (tk, tk, v, s.double()), r"scale must be \[2\] Float on cpu, got \[2\] Double"),
        (o.pairwise_displacement_error, (tk, tk, v.bool(), s), r"weight/valid must be \[2, 6\] Float on cpu, got \[2, 6\] Bool"),
        (o._pairwise_displacement_error_backward, (torch.ones(2), tk, tk, v, s[:1]),
         r"_pairwise_displacement_error_backward: scale must be \[2\] Float on cpu, got \[1\] Float"),
        (o._pairwise_displacement_error_backward, (torch.ones(4), tk, tk, v, s),
         r"_pairwise_displacement_error_backward: grad must be \[2\], got \[4\]"),
    ]


@pytest.mark.parametrize("i", range(len(_kernel_errors())))
def test_kernel_error_messages(i):
    op, args, msg = _kernel_errors()[i]
    with pytest.raises(RuntimeError, match=msg):
        op(*args)


def test_kernel_accepts_what_the_wrapper_rejects():
    """D = 4 is a kernel-level capability the masked_joint_error wrapper deliberately refuses."""
    rng = np.random.default_rng(12)
    pred, target, w = mje_inputs(rng, 3, 5, 4, "float")
    assert_near(torch.ops.romp_fast.masked_joint_error(pred, target, w), mje_np(*np_of(pred, target, w))[0], F64)
    assert_near(kl.masked_joint_error_reference(pred, target, w), mje_np(*np_of(pred, target, w))[0], F64)
