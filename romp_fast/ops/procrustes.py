"""Batched weighted similarity (Procrustes) alignment: public wrappers, reference, fake kernels,
autograd.

For each sample b the transform (R, s, t) minimises ``sum_n w_n |s R pred_n + t - target_n|^2``
with det R = +1 (Umeyama 1991, reflection-corrected). Degenerate-input convention, the same on
every path:

- a point with weight 0 is ignored entirely (even if its coordinates are NaN);
- no point with weight > 0: identity transform (R = I, s = 1, t = 0), PA error 0;
- collapsed prediction (weighted variance <= 1e-20 of its second moment): R = I, s = 0,
  t = target centroid, so every aligned point is the target centroid; its gradient is 0;
- collinear points (incl. 2 points): the rotation about the line is arbitrary but deterministic,
  aligned points and errors are exact;
- a negative or NaN weight, or a non-finite weighted point: NaN for that sample only. On CPU the
  wrappers raise for negative/NaN weights instead (the CUDA path must not synchronise to check).

Backward (native): with a_n = s R xc_n + my, G_n = dL/da_n, M = sum_n G_n xc_n^T, c = <R, M>,
R = R(q) for Horn's top eigenvector q of N(K) (csrc/procrustes_core.h):
dL/dx_n = s R^T (G_n - w_n/W sum G) + w_n [(Gamma + c/vx R^T) yc_n - 2 s c / vx xc_n], where
Gamma = N*(sym(u q^T)) and u = (lam I - N)^+ (2 s N(M^T) q) is the eigenvector perturbation
(gaps regularised by 1e-8 sqrt(vx vy)). It stays finite for repeated singular values, where
autograd through torch.linalg.svd returns NaN.
"""
from __future__ import annotations

import torch

from romp_fast import ops as _ops

_NATIVE = _ops._C is not None
_COLLAPSED_REL_VAR = 1e-20  # csrc/procrustes_core.h kCollapsedRelVar


def _prepare(op, pred, target, weight):
    """Checks the caller's tensors and returns weight in pred's dtype (or None)."""
    if not isinstance(pred, torch.Tensor) or pred.dim() != 3 or pred.shape[-1] != 3:
        raise ValueError(f"{op}: pred must be [B, N, 3], got {list(getattr(pred, 'shape', []))}")
    if pred.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{op}: pred must be float32 or float64, got {pred.dtype}")
    if target.shape != pred.shape:
        raise ValueError(f"{op}: target must match pred {list(pred.shape)}, got {list(target.shape)}")
    if target.dtype != pred.dtype:
        raise TypeError(f"{op}: target dtype {target.dtype} differs from pred dtype {pred.dtype}")
    if target.device != pred.device:
        raise ValueError(f"{op}: target is on {target.device} but pred is on {pred.device}")
    if torch.is_grad_enabled() and target.requires_grad:
        raise ValueError(f"{op}: differentiable in pred only; detach target")
    if weight is None:
        return None
    if torch.is_grad_enabled() and weight.requires_grad:
        raise ValueError(f"{op}: weight is not differentiable; detach it")
    return _ops._as_weight(op, "weight", weight, pred.shape[:2], pred, "[B, N] = ")


def _fit_reference(pred, target, weight):
    """Pure-torch batched reference: (R, s, t, used-point weights, invalid mask)."""
    B, N, _ = pred.shape
    w = torch.ones(B, N, dtype=pred.dtype, device=pred.device) if weight is None else weight
    invalid = ~(w >= 0).all(-1)
    use = w > 0
    wz = torch.where(use, w, 0)
    W = wz.sum(-1)
    Wd = torch.where(W > 0, W, 1)[:, None]
    # Centroids of points shifted by the first point (as the kernel does): an exactly collapsed
    # cloud then has exactly zero variance whatever the dtype and weights.
    o = torch.cat([pred[:, :1], target[:, :1]], -1) if N else pred.new_zeros(B, 1, 6)
    o = torch.where(torch.isfinite(o).all(-1, keepdim=True), o, 0).detach()
    x = torch.where(use[..., None], pred - o[..., :3], 0)
    y = torch.where(use[..., None], target - o[..., 3:], 0)
    mx = (wz[..., None] * x).sum(1) / Wd + o[:, 0, :3]
    my = (wz[..., None] * y).sum(1) / Wd + o[:, 0, 3:]
    xc = torch.where(use[..., None], pred - mx[:, None], 0)
    yc = torch.where(use[..., None], target - my[:, None], 0)
    K = torch.einsum("bn,bni,bnj->bij", wz, xc, yc)
    vx = (wz * xc.square().sum(-1)).sum(-1)
    invalid = invalid | ~torch.isfinite(K).all(-1).all(-1) | ~torch.isfinite(vx)
    empty = W <= 0
    collapsed = ~empty & (vx <= _COLLAPSED_REL_VAR * (vx + W * mx.square().sum(-1)))
    regular = ~(invalid | empty | collapsed)
    # K = U S V^T; R = V diag(1, 1, d) U^T with d = sign det(V U^T) (reflection fix).
    U, S, Vh = torch.linalg.svd(torch.where(regular[:, None, None], K, 0))
    V = Vh.mT
    d = torch.sign(torch.linalg.det(V @ U.mT))
    D = torch.stack([torch.ones_like(d), torch.ones_like(d), torch.where(d == 0, 1, d)], -1)
    R = V @ (D[..., None] * U.mT)
    s = (S * D).sum(-1) / torch.where(regular, vx, 1)
    eye = torch.eye(3, dtype=pred.dtype, device=pred.device).expand(B, 3, 3)
    R = torch.where((regular & (K != 0).any(-1).any(-1))[:, None, None], R, eye)
    s = torch.where(regular, s, torch.where(empty, 1.0, 0.0).to(pred.dtype))
    t = my - s[:, None] * (R @ mx[..., None])[..., 0]
    t = torch.where(empty[:, None], 0, torch.where(collapsed[:, None], my, t))
    nan = torch.tensor(float("nan"), dtype=pred.dtype, device=pred.device)
    R = torch.where(invalid[:, None, None], nan, R)
    s = torch.where(invalid, nan, s)
    t = torch.where(invalid[:, None], nan, t)
    return R, s, t, wz, invalid


def similarity_transform_reference(pred, target, weight=None):
    R, s, t, _, _ = _fit_reference(pred, target, weight)
    return R, s, t


def procrustes_align_reference(pred, target, weight=None):
    R, s, t, _, _ = _fit_reference(pred, target, weight)
    return s[:, None, None] * pred @ R.mT + t[:, None]


def pa_mpjpe_reference(pred, target, weight=None):
    R, s, t, wz, invalid = _fit_reference(pred, target, weight)
    use = (wz > 0)[..., None]
    # Masked points are replaced before any arithmetic, so a NaN there cannot reach a gradient.
    aligned = s[:, None, None] * torch.where(use, pred, 0) @ R.mT + t[:, None]
    dist = torch.where(use, aligned - torch.where(use, target, 0), 0).norm(dim=-1)
    W = wz.sum(-1)
    err = (wz * dist).sum(-1) / torch.where(W > 0, W, 1)
    return torch.where(invalid, torch.nan, err)


def similarity_transform(pred, target, weight=None):
    """Per-sample similarity transform aligning ``pred`` to ``target``.

    Args:
        pred (Tensor[B, N, 3]): points to align, float32/float64, CPU or CUDA.
        target (Tensor[B, N, 3]): reference points, same dtype and device.
        weight (Tensor[B, N], optional): bool visibility or non-negative float weights.
    Returns:
        (R[B, 3, 3], s[B], t[B, 3]) with ``aligned = s * pred @ R.mT + t``. Not differentiable:
        raises ValueError if ``pred`` requires grad under grad mode (and the op's backward
        raises); use :func:`procrustes_align` for a differentiable alignment.
    """
    weight = _prepare("similarity_transform", pred, target, weight)
    if torch.is_grad_enabled() and pred.requires_grad:
        raise ValueError("similarity_transform is not differentiable: use procrustes_align for a "
                         "differentiable alignment, or call it under torch.no_grad() / on pred.detach()")
    if _ops._use_native("similarity_transform", pred.device):
        return tuple(torch.ops.romp_fast.similarity_transform(pred, target, weight))
    return similarity_transform_reference(pred, target, weight)


def procrustes_align(pred, target, weight=None):
    """``pred`` aligned to ``target`` by its similarity transform: Tensor[B, N, 3], input units.

    Every point is transformed (weighted or not); the transform is fitted on weighted points.
    Differentiable with respect to ``pred`` (analytic backward on the native path).
    """
    weight = _prepare("procrustes_align", pred, target, weight)
    if _ops._use_native("procrustes_align", pred.device):
        return torch.ops.romp_fast.procrustes_align(pred, target, weight)
    return procrustes_align_reference(pred, target, weight)


def pa_mpjpe(pred, target, weight=None):
    """Fused per-sample PA-MPJPE: Tensor[B], weighted mean of |aligned - target| in input units.

    The native path never materialises the aligned points. Differentiable with respect to ``pred``.
    Use :func:`romp_fast.metrics.pa_mpjpe` for the metric with masks and ROMP's options.
    """
    weight = _prepare("pa_mpjpe", pred, target, weight)
    if _ops._use_native("pa_mpjpe", pred.device):
        return torch.ops.romp_fast.pa_mpjpe(pred, target, weight)
    return pa_mpjpe_reference(pred, target, weight)


if _NATIVE:
    @torch.library.register_fake("romp_fast::similarity_transform")
    def _(pred, target, weight):
        B = pred.shape[0]
        return pred.new_empty(B, 3, 3), pred.new_empty(B), pred.new_empty(B, 3)

    @torch.library.register_fake("romp_fast::procrustes_align")
    def _(pred, target, weight):
        return pred.new_empty(pred.shape)  # the kernels return contiguous tensors

    @torch.library.register_fake("romp_fast::_procrustes_align_backward")
    def _(grad, pred, target, weight):
        return pred.new_empty(pred.shape)  # the kernels return contiguous tensors

    @torch.library.register_fake("romp_fast::pa_mpjpe")
    def _(pred, target, weight):
        return pred.new_empty(pred.shape[0])

    @torch.library.register_fake("romp_fast::_pa_mpjpe_backward")
    def _(grad, pred, target, weight):
        return pred.new_empty(pred.shape)  # the kernels return contiguous tensors

    def _setup_context(ctx, inputs, output):
        pred, target, weight = inputs
        ctx.save_for_backward(pred, target, weight)

    def _align_backward(ctx, grad):
        pred, target, weight = ctx.saved_tensors
        g = torch.ops.romp_fast._procrustes_align_backward(grad, pred, target, weight)
        return g, None, None

    def _pa_backward(ctx, grad):
        pred, target, weight = ctx.saved_tensors
        g = torch.ops.romp_fast._pa_mpjpe_backward(grad, pred, target, weight)
        return g, None, None

    def _transform_backward(ctx, *grads):
        raise RuntimeError("romp_fast::similarity_transform is not differentiable; "
                           "use romp_fast.ops.procrustes_align")

    torch.library.register_autograd("romp_fast::similarity_transform", _transform_backward,
                                    setup_context=lambda ctx, inputs, output: None)
    torch.library.register_autograd("romp_fast::procrustes_align", _align_backward,
                                    setup_context=_setup_context)
    torch.library.register_autograd("romp_fast::pa_mpjpe", _pa_backward,
                                    setup_context=_setup_context)
