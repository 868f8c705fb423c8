"""Helpers shared by the benchmark suites and the standalone GPU script (no pytest imports here).

- ``joint_inputs``: seeded numpy inputs, cached per case so every contender sees the same arrays.
- ``pa_mpjpe_np``: the float64 numpy batched-SVD PA-MPJPE, the agreement oracle (and a contender).
- ``pa_mpjpe_loop``: the same math one sample at a time, one ``np.linalg.svd`` per sample, as the
  SPIN / mmhuman3d evaluation code runs it (a peer, and an independent check of the oracle).
- ``assert_close``: |got - ref| <= rtol * (1 + |ref|) with the worst offender in the message.
"""
from __future__ import annotations

import functools
import os

import numpy as np

# Seconds of timed rounds per benchmark case (BENCH_BUDGET_S overrides; 5 rounds at least).
BUDGET_S = float(os.environ.get("BENCH_BUDGET_S", "1.0"))


@functools.lru_cache(maxsize=8)
def joint_inputs(B: int, J: int, mask_frac: float = 0.0, seed: int = 0):
    """Seeded float64 numpy (pred, target, mask-or-None) in metres, read-only.

    target: a body-sized random point cloud (std 0.3 m); pred: a random similarity transform of the
    target (scale 0.7-1.4, any rotation, metres of translation) plus per-joint noise (std 5 cm), so
    PA-MPJPE is ~8 cm and every sample is regular (distinct singular values). With ``mask_frac`` > 0
    each joint is invisible with that probability; samples keep at least 3 visible joints.
    """
    rng = np.random.default_rng(seed)
    target = rng.normal(0.0, 0.3, size=(B, J, 3))
    q = rng.normal(size=(B, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    R = np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)
    s = rng.uniform(0.7, 1.4, size=(B, 1, 1))
    t = rng.normal(0.0, 2.0, size=(B, 1, 3))
    pred = s * target @ R.transpose(0, 2, 1) + t + rng.normal(0.0, 0.05, size=(B, J, 3))
    mask = None
    if mask_frac > 0:
        mask = rng.random((B, J)) >= mask_frac
        mask[mask.sum(1) < 3, :3] = True
    for a in (pred, target, mask):
        if a is not None:
            a.setflags(write=False)
    return pred, target, mask


def pa_mpjpe_np(pred, target, weight=None):
    """Batched weighted PA-MPJPE in numpy, computed in float64: ndarray[B].

    Umeyama 1991: with weighted centroids mx, my and centred points xc, yc,
    K = sum_n w_n xc_n yc_n^T = U S V^T, R = V D U^T with D = diag(1, 1, sign det(V U^T)),
    s = tr(D S) / sum_n w_n |xc_n|^2, t = my - s R mx; the error is the w-weighted mean of
    |s R x_n + t - y_n|. Regular inputs only (no degenerate-case conventions).
    """
    x = np.asarray(pred, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    w = np.ones(x.shape[:2]) if weight is None else np.asarray(weight, dtype=np.float64)
    W = w.sum(1)
    mx = np.einsum("bn,bni->bi", w, x) / W[:, None]
    my = np.einsum("bn,bni->bi", w, y) / W[:, None]
    xc = x - mx[:, None]
    yc = y - my[:, None]
    K = np.einsum("bn,bni,bnj->bij", w, xc, yc)
    vx = np.einsum("bn,bni,bni->b", w, xc, xc)
    U, S, Vt = np.linalg.svd(K)
    d = np.sign(np.linalg.det(U @ Vt))  # det(V U^T) = det(U V^T)
    D = np.stack([np.ones_like(d), np.ones_like(d), d], -1)
    R = Vt.transpose(0, 2, 1) @ (D[:, :, None] * U.transpose(0, 2, 1))
    s = (S * D).sum(1) / vx
    # aligned - target = s R xc + my - y = s R xc - yc
    diff = s[:, None, None] * xc @ R.transpose(0, 2, 1) - yc
    return (w * np.sqrt((diff * diff).sum(-1))).sum(1) / W


def _similarity_error_one(X, Y):
    """One sample's PA-MPJPE over its rows X, Y [n, 3], in the dtype given (SPIN keeps float32)."""
    mx = X.mean(0)
    my = Y.mean(0)
    Xc = X - mx
    Yc = Y - my
    K = Xc.T @ Yc
    U, S, Vt = np.linalg.svd(K)
    Z = np.eye(3, dtype=X.dtype)
    Z[2, 2] = np.sign(np.linalg.det(U @ Vt))
    R = Vt.T @ Z @ U.T
    scale = np.trace(R @ K) / (Xc * Xc).sum()
    aligned = scale * X @ R.T + (my - scale * R @ mx)
    return np.sqrt(((aligned - Y) ** 2).sum(1)).mean()


def pa_mpjpe_loop(pred, target, mask=None):
    """Per-sample loop, one SVD per sample (SPIN / mmhuman3d evaluation style): ndarray[B].

    With a mask each sample is aligned on its own visible joints (SPIN has no mask; mmhuman3d
    aligns on all joints and masks afterwards, which is a different metric).
    """
    out = np.empty(len(pred), dtype=np.float64)
    for i in range(len(pred)):
        if mask is None:
            out[i] = _similarity_error_one(pred[i], target[i])
        else:
            m = mask[i]
            out[i] = _similarity_error_one(pred[i][m], target[i][m])
    return out


def assert_close(name, got, ref, rtol):
    """|got - ref| <= rtol * (1 + |ref|) elementwise, with the worst offender in the message."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"{name}: shape {got.shape} != reference {ref.shape}"
    assert np.isfinite(got).all(), f"{name}: non-finite output"
    excess = np.abs(got - ref) - rtol * (1 + np.abs(ref))
    if (excess > 0).any():
        i = int(np.argmax(excess))
        raise AssertionError(f"{name}: |got - ref| exceeds {rtol:g}*(1+|ref|) at {i}: got "
                             f"{got.flat[i]!r}, ref {ref.flat[i]!r} ({int((excess > 0).sum())} of "
                             f"{excess.size} elements; max abs diff {np.abs(got - ref).max():.3g})")
    return float(np.abs(got - ref).max()) if got.size else 0.0



def rounds_for(seconds_per_call: float, budget_s: float = BUDGET_S, lo: int = 5, hi: int = 200) -> int:
    """Rounds that fit ``budget_s`` given one untimed call's duration, within [lo, hi].

    Cheap cases get many rounds (a stable min on a noisy shared machine); expensive ones the
    protocol's minimum of 5.
    """
    return int(min(hi, max(lo, budget_s // max(seconds_per_call, 1e-9))))
