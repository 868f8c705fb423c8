"""romp_fast.ops.lbs_vertex_error: mean vertex distance between two linear-blend-skinned meshes.

The oracle is a float64 numpy loop written from the module docstring (per sample, per vertex, over
the joints with non-zero weight). The native kernel and the torch reference are compared with it on
layouts the kernel treats differently (batch dimension innermost with full 16-lane blocks, partial
blocks, any strides), weight patterns (0, 1 to 4 and more non-zero joints per vertex, dense rows)
and sizes around its lane width and vertex tile; CUDA cases skip without a GPU.
"""
import contextlib

import numpy as np
import pytest
import torch
from torch.library import opcheck

import romp_fast.ops as ops
from romp_fast.ops.lbs_vertex_error import lbs_vertex_error_reference, linear_blend_skinning

F32, F64 = torch.float32, torch.float64
PATHS = ["native", "reference"]


def lbs_err_np(pred_rest, pred_A, target_rest, target_A, weights, pred_root=None, target_root=None):
    B, V, _ = pred_rest.shape
    out = np.zeros(B)
    for b in range(B):
        if V == 0:
            continue
        for v in range(V):
            x = []
            for rest, A, root in ((pred_rest, pred_A, pred_root), (target_rest, target_A, target_root)):
                p = np.zeros(3)
                for j in np.flatnonzero(weights[v]):
                    p += weights[v, j] * (A[b, j, :, :3] @ rest[b, v] + A[b, j, :, 3])
                x.append(p - (0 if root is None else root[b]))
            out[b] += np.linalg.norm(x[0] - x[1]) / V
    return out


def skin_weights(rng, V, J, pattern):
    """[V, J] rows summing to 1: "smpl" 1 to 4 non-zeros per vertex (SMPL's range), "mixed" also
    rows with none and with 5 to J (the kernel's generic path), "dense" every joint."""
    w = rng.random((V, J)) + 0.05
    if pattern != "dense":
        hi = 4 if pattern == "smpl" else J
        for v in range(V):
            k = rng.integers(1, min(hi, J) + 1)
            w[v, rng.permutation(J)[k:]] = 0
        if pattern == "mixed" and V > 3:
            w[V // 3] = 0  # a vertex no joint moves: it sits at -root
    s = w.sum(1, keepdims=True)
    return w / np.where(s > 0, s, 1)


def make_inputs(rng, B, V, J, pattern="smpl", roots=(True, True), layout="contiguous", dtype=F64, device="cpu"):
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)  # noqa: E731
    rest = rng.normal(size=(2, B, V, 3))
    A = rng.normal(size=(2, B, J, 3, 4))
    A[..., :3] += 2 * np.eye(3)
    w = skin_weights(rng, V, J, pattern)
    r = rng.normal(size=(2, B, 3))
    if layout == "batch_inner":  # as EvalSMPL writes them: one [V, 3, 2B] GEMM output, pred then target
        both = t(np.concatenate([rest[0], rest[1]]).transpose(1, 2, 0))
        pr, tr = both[..., :B].permute(2, 0, 1), both[..., B:].permute(2, 0, 1)
    elif layout == "strided":  # every tensor a non-contiguous view
        pr, tr = t(rest[0].transpose(1, 0, 2)).transpose(0, 1), t(np.repeat(rest[1], 2, -1))[..., ::2]
    else:
        pr, tr = t(rest[0]), t(rest[1])
    pA, tA = t(A[0]), t(A[1])
    wt = t(w)
    if layout == "strided":
        pA = t(A[0].transpose(1, 0, 2, 3)).transpose(0, 1)
        wt = t(w.T).T
    args = [pr, pA, tr, tA, wt, t(r[0]) if roots[0] else None, t(r[1]) if roots[1] else None]
    npa = [rest[0], A[0], rest[1], A[1], w, r[0] if roots[0] else None, r[1] if roots[1] else None]
    return args, npa


def path_ctx(path):
    return ops.use_reference() if path == "reference" else contextlib.nullcontext()


def assert_near(got, ref, dtype):
    got = got.detach().cpu().double().numpy()
    tol = 2e-5 if dtype == F32 else 1e-11
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("B", [0, 1, 3, 16, 17, 33])
@pytest.mark.parametrize("layout", ["contiguous", "batch_inner", "strided"])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_matches_numpy(device, B, layout, dtype):
    rng = np.random.default_rng(B)
    args, npa = make_inputs(rng, B, 37, 24, "mixed", layout=layout, dtype=dtype, device=device)
    ref = lbs_err_np(*npa)
    for path in PATHS:
        with path_ctx(path):
            out = ops.lbs_vertex_error(*args)
        assert out.shape == (B,) and out.dtype == dtype and out.device == args[0].device
        assert_near(out, ref, dtype)


@pytest.mark.parametrize("pattern", ["smpl", "mixed", "dense"])
@pytest.mark.parametrize("roots", [(True, True), (False, False), (True, False)])
@pytest.mark.parametrize("J", [1, 5, 24])
def test_weight_patterns_and_roots(device, pattern, roots, J):
    rng = np.random.default_rng(J)
    args, npa = make_inputs(rng, 5, 23, J, pattern, roots, dtype=F64, device=device)
    ref = lbs_err_np(*npa)
    for path in PATHS:
        with path_ctx(path):
            assert_near(ops.lbs_vertex_error(*args), ref, F64)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_smpl_size_across_tiles_and_threads(dtype):
    """6890 vertices (several 1024-vertex tiles), 40 samples (two full blocks and a partial one);
    the result does not depend on the thread count (fixed reduction order)."""
    rng = np.random.default_rng(7)
    args, _ = make_inputs(rng, 40, 6890, 24, "smpl", layout="batch_inner", dtype=dtype)
    ref = lbs_vertex_error_reference(*[a.double() if a is not None else None for a in args])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ops.lbs_vertex_error(*args)
        torch.set_num_threads(2)
        two = ops.lbs_vertex_error(*args)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(one, two, rtol=0, atol=0)
    torch.testing.assert_close(one.double(), ref, rtol=1e-5 if dtype == F32 else 1e-12, atol=0)


def test_equals_distance_of_skinned_meshes(device):
    """The op is the mean distance of the meshes linear_blend_skinning poses (its definition)."""
    rng = np.random.default_rng(3)
    args, _ = make_inputs(rng, 4, 50, 24, "smpl", device=device)
    pr, pA, tr, tA, w, rp, rg = args
    xp = linear_blend_skinning(pr, pA, w) - rp[:, None]
    xg = linear_blend_skinning(tr, tA, w) - rg[:, None]
    torch.testing.assert_close(ops.lbs_vertex_error(*args), (xp - xg).norm(dim=-1).mean(1), rtol=1e-12, atol=1e-12)
    assert (ops.lbs_vertex_error(pr, pA, pr, pA, w) == 0).all()


def test_no_vertices_scores_zero(device):
    rng = np.random.default_rng(4)
    args, _ = make_inputs(rng, 3, 0, 24, device=device)
    for path in PATHS:
        with path_ctx(path):
            assert (ops.lbs_vertex_error(*args) == 0).all()


@pytest.mark.parametrize("dtype", [F32, F64])
def test_opcheck(device, dtype):
    rng = np.random.default_rng(5)
    args, _ = make_inputs(rng, 3, 11, 24, "mixed", dtype=dtype, device=device)
    if not ops.native_available(device.type):
        pytest.skip("romp_fast._C not built")
    opcheck(torch.ops.romp_fast.lbs_vertex_error, tuple(args))


def test_errors():
    rng = np.random.default_rng(6)
    args, _ = make_inputs(rng, 2, 5, 24, dtype=F32)
    pr, pA, tr, tA, w, rp, rg = args
    with pytest.raises(ValueError, match=r"pred_rest must be \[B, V, 3\], got \[2, 5, 2\]"):
        ops.lbs_vertex_error(pr[..., :2], pA, tr, tA, w)
    with pytest.raises(ValueError, match=r"weights must be \[V, J\] with V = 5, got \[4, 24\]"):
        ops.lbs_vertex_error(pr, pA, tr, tA, w[:4])
    with pytest.raises(ValueError, match=r"target_transforms must be \[2, 24, 3, 4\], got \[2, 23, 3, 4\]"):
        ops.lbs_vertex_error(pr, pA, tr, tA[:, :23], w)
    with pytest.raises(ValueError, match=r"pred_root must be \[2, 3\], got \[1, 3\]"):
        ops.lbs_vertex_error(pr, pA, tr, tA, w, rp[:1], rg)
    with pytest.raises(TypeError, match="target_rest must be torch.float32 on cpu, got torch.float64"):
        ops.lbs_vertex_error(pr, pA, tr.double(), tA, w)
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.lbs_vertex_error(pr.half(), pA, tr, tA, w)
    with pytest.raises(ValueError, match="not differentiable"):
        ops.lbs_vertex_error(pr.requires_grad_(), pA, tr, tA, w)
    if ops.native_available("cpu"):  # the kernel's own checks, for direct torch.ops callers
        with pytest.raises(RuntimeError, match=r"pred_transforms must be \[B, J, 3, 4\] = \[2, 24, 3, 4\]"):
            torch.ops.romp_fast.lbs_vertex_error(pr.detach(), pA[:, :, :2], tr, tA, w, None, None)
