"""Fused keypoint and temporal error ops: public wrappers, references, fake kernels, autograd.

- ``masked_joint_error(pred, target, weight) -> [B]``: sum_j w_j |pred_j - target_j| / sum_j w_j
  over ``[B, J, D]`` (D = 2 or 3); the core of the 2D/3D keypoint losses and of MPJPE.
- ``temporal_difference_error(pred, target, valid, order) -> [S]``: over ``[S, T, J, D]`` tracks,
  the mean over joints and over the frames t whose stencil is valid of
  |Δ^k pred_t - Δ^k target_t| with Δ^1 x_t = x_{t+1} - x_t and Δ^2 x_t = x_{t+1} - 2 x_t + x_{t-1}
  (acceleration error as in HMMR/VIBE's ``compute_error_accel``).
- ``pairwise_displacement_error(pred, target, valid, scale) -> [S]``: over ``[S, T, 3]`` tracks,
  the mean over ordered pairs of valid frames i != j of |s (p_i - p_j) - (g_i - g_j)| (TRACE's
  scale-aligned world-translation displacement), without materialising the T x T pairs.

Conventions shared by all three: points/frames with zero weight or invalid are ignored entirely
(even if not finite); a sample with nothing valid scores 0 with a zero gradient; the gradient at
zero distance is 0 (the subgradient). Differentiable with respect to ``pred`` only (target, weights,
validity and scale must not require grad).
"""
from __future__ import annotations

import torch

from romp_fast import ops as _ops

_NATIVE = _ops._C is not None


def _no_grad_inputs(op, **tensors):
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.requires_grad and torch.is_grad_enabled():
            raise ValueError(f"{op}: differentiable in pred only; detach {name}")


def _float_like(op, pred, target):
    if pred.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{op}: pred must be float32 or float64, got {pred.dtype}")
    if target.shape != pred.shape:
        raise ValueError(f"{op}: target must match pred {list(pred.shape)}, got {list(target.shape)}")
    if target.dtype != pred.dtype or target.device != pred.device:
        raise TypeError(f"{op}: target must be {pred.dtype} on {pred.device}, got {target.dtype} on {target.device}")


# ----------------------------------------------------------------------------- references
def masked_joint_error_reference(pred, target, weight):
    use = weight > 0
    dist = torch.where(use[..., None], pred - target, 0).norm(dim=-1)
    w = torch.where(use, weight, 0)
    W = w.sum(-1)
    return (w * dist).sum(-1) / torch.where(W > 0, W, 1)


def _difference(x, order):
    return x[:, 1:] - x[:, :-1] if order == 1 else x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]


def temporal_difference_error_reference(pred, target, valid, order):
    S, T, J, _ = pred.shape
    if T <= order:  # no frame has its stencil; keep the graph for a zero gradient
        return torch.where(torch.zeros_like(pred, dtype=torch.bool), pred, 0).sum((1, 2, 3))
    v = valid > 0
    ok = v[:, order:] & v[:, :-order] if order == 1 else v[:, 2:] & v[:, 1:-1] & v[:, :-2]
    pz = torch.where(v[..., None, None], pred, 0)
    tz = torch.where(v[..., None, None], target, 0)
    d = torch.where(ok[..., None, None], _difference(pz, order) - _difference(tz, order), 0)
    err = d.norm(dim=-1).mean(-1)  # [S, T - order]
    n = ok.sum(-1)
    return torch.where(ok, err, 0).sum(-1) / torch.where(n > 0, n, 1)


def pairwise_displacement_error_reference(pred, target, valid, scale):
    v = valid > 0
    pz = torch.where(v[..., None], pred, 0)
    tz = torch.where(v[..., None], target, 0)
    dp = pz[:, :, None] - pz[:, None]  # [S, T, T, 3]
    dg = tz[:, :, None] - tz[:, None]
    pair = v[:, :, None] & v[:, None] & ~torch.eye(v.shape[1], dtype=torch.bool, device=v.device)
    r = torch.where(pair[..., None], scale[:, None, None, None] * dp - dg, 0)
    dist = r.norm(dim=-1)
    n = pair.sum((1, 2))
    return torch.where(pair, dist, 0).sum((1, 2)) / torch.where(n > 0, n, 1)


# ----------------------------------------------------------------------------- wrappers
def masked_joint_error(pred, target, weight=None):
    """Weighted mean joint distance per sample, Tensor[B] in input units; differentiable in pred.

    pred, target (Tensor[B, J, D]), D = 2 or 3; weight (Tensor[B, J] bool or float >= 0, optional).
    """
    op = "masked_joint_error"
    if pred.dim() != 3 or pred.shape[-1] not in (2, 3):
        raise ValueError(f"{op}: pred must be [B, J, 2] or [B, J, 3], got {list(pred.shape)}")
    _float_like(op, pred, target)
    _no_grad_inputs(op, target=target, weight=weight)
    w = (torch.ones(pred.shape[:2], dtype=pred.dtype, device=pred.device) if weight is None
         else _ops._as_weight(op, "weight", weight, pred.shape[:2], pred))
    if _ops._use_native(op, pred.device):
        return torch.ops.romp_fast.masked_joint_error(pred, target, w)
    return masked_joint_error_reference(pred, target, w)


def temporal_difference_error(pred, target, valid=None, order=2):
    """Velocity (order 1) or acceleration (order 2) error per track, Tensor[S]; differentiable in pred.

    pred, target (Tensor[S, T, J, D] or [S, T, D]); valid (Tensor[S, T] bool/float, optional).
    """
    op = "temporal_difference_error"
    if pred.dim() == 3:
        pred, target = pred[:, :, None], target[:, :, None]
    if pred.dim() != 4:
        raise ValueError(f"{op}: pred must be [S, T, J, D] or [S, T, D], got {list(pred.shape)}")
    if order not in (1, 2):
        raise ValueError(f"{op}: order must be 1 (velocity) or 2 (acceleration), got {order}")
    _float_like(op, pred, target)
    _no_grad_inputs(op, target=target, valid=valid)
    v = (torch.ones(pred.shape[:2], dtype=pred.dtype, device=pred.device) if valid is None
         else _ops._as_weight(op, "valid", valid, pred.shape[:2], pred))
    if _ops._use_native(op, pred.device):
        return torch.ops.romp_fast.temporal_difference_error(pred, target, v, int(order))
    return temporal_difference_error_reference(pred, target, v, order)


def pairwise_displacement_error(pred, target, valid=None, scale=None):
    """Scale-aligned pairwise displacement error per track, Tensor[S]; differentiable in pred.

    pred, target (Tensor[S, T, 3]); valid (Tensor[S, T], optional); scale (Tensor[S] or float,
    default 1; not differentiated).
    """
    op = "pairwise_displacement_error"
    if pred.dim() != 3:
        raise ValueError(f"{op}: pred must be [S, T, D], got {list(pred.shape)}")
    _float_like(op, pred, target)
    _no_grad_inputs(op, target=target, valid=valid, scale=scale)
    S = pred.shape[0]
    v = (torch.ones(pred.shape[:2], dtype=pred.dtype, device=pred.device) if valid is None
         else _ops._as_weight(op, "valid", valid, pred.shape[:2], pred))
    s = torch.as_tensor(1.0 if scale is None else scale, dtype=pred.dtype, device=pred.device)
    s = s.expand(S).contiguous() if s.dim() == 0 else s
    if s.shape != (S,):
        raise ValueError(f"{op}: scale must be a number or [S] = [{S}], got {list(s.shape)}")
    if _ops._use_native(op, pred.device):
        return torch.ops.romp_fast.pairwise_displacement_error(pred, target, v, s)
    return pairwise_displacement_error_reference(pred, target, v, s)


if _NATIVE:
    @torch.library.register_fake("romp_fast::masked_joint_error")
    def _(pred, target, weight):
        return pred.new_empty(pred.shape[0])

    @torch.library.register_fake("romp_fast::_masked_joint_error_backward")
    def _(grad, pred, target, weight):
        return pred.new_empty(pred.shape)  # the kernels return contiguous tensors

    @torch.library.register_fake("romp_fast::temporal_difference_error")
    def _(pred, target, valid, order):
        return pred.new_empty(pred.shape[0])

    @torch.library.register_fake("romp_fast::_temporal_difference_error_backward")
    def _(grad, pred, target, valid, order):
        return pred.new_empty(pred.shape)  # the kernels return contiguous tensors

    @torch.library.register_fake("romp_fast::pairwise_displacement_error")
    def _(pred, target, valid, scale):
        return pred.new_empty(pred.shape[0])

    @torch.library.register_fake("romp_fast::_pairwise_displacement_error_backward")
    def _(grad, pred, target, valid, scale):
        return pred.new_empty(pred.shape)  # the kernels return contiguous tensors

    def _save(ctx, inputs, output):
        ctx.save_for_backward(*[x for x in inputs if isinstance(x, torch.Tensor)])
        ctx.extra = [x for x in inputs if not isinstance(x, torch.Tensor)]

    def _bwd(name):
        def backward(ctx, grad):
            saved = ctx.saved_tensors
            g = getattr(torch.ops.romp_fast, name)(grad, *saved, *ctx.extra)
            return (g,) + (None,) * (len(saved) + len(ctx.extra) - 1)
        return backward

    for _op in ("masked_joint_error", "temporal_difference_error", "pairwise_displacement_error"):
        torch.library.register_autograd(f"romp_fast::{_op}", _bwd(f"_{_op}_backward"), setup_context=_save)
