"""Vertex error between two linear-blend-skinned meshes: public wrapper, reference, fake kernel.

``lbs_vertex_error(pred_rest, pred_transforms, target_rest, target_transforms, weights,
pred_root=None, target_root=None) -> [B]``: per sample, the mean over vertices v of
``|(x^pred_v - r^pred) - (x^target_v - r^target)|`` where a skinned vertex is
``x_v = sum_j w_vj A_j [rest_v; 1]`` (linear blend skinning, SMPL eq. 4 with the blend shapes
already in ``rest``) and ``r`` is the side's root (zero when not given). This is PVE (the 3DPW
protocol's mean vertex error) straight from the skinning inputs: the native kernels never hold a
posed mesh or the per-vertex transforms, and sum each vertex's transform over its non-zero weights
only (for finite transforms, the same sum: zero weights add exact zeros). A mesh with no vertex
scores 0.

Not differentiable (an evaluation metric): inputs must not require grad.
"""
from __future__ import annotations

import warnings

import torch

from romp_fast import ops as _ops

# An extension built before this op has no kernel for it: then the reference, with one warning.
_NATIVE = _ops._C is not None and hasattr(torch.ops.romp_fast, "lbs_vertex_error")


def _skin_vertex_major(rest, transforms, weights):
    """Posed vertices as [V, 3, B] (batch innermost). T = W A is one GEMM [V, J] x [J, 12 B]; then
    three multiply-adds over [V, 3, B], contiguous when ``rest`` is batch-innermost (as the 3DPW
    evaluator writes it), strided views otherwise."""
    B, V, _ = rest.shape
    J = weights.shape[1]
    T = (weights @ transforms.permute(1, 2, 3, 0).reshape(J, 12 * B)).view(V, 3, 4, B)
    v = rest.permute(1, 2, 0)  # [V, 3, B]
    out = T[:, :, 3].clone()
    for d in range(3):
        out.addcmul_(T[:, :, d], v[:, None, d])
    return out


def linear_blend_skinning(rest, transforms, weights):
    """Posed vertices [B, V, 3] from rest-pose vertices ``rest`` [B, V, 3] (template and blend
    shapes applied), per-joint affine transforms ``transforms`` [B, J, 3, 4] (rest to posed) and
    skinning weights ``weights`` [V, J] (pure torch; a view of a batch-innermost tensor)."""
    return _skin_vertex_major(rest, transforms, weights).permute(2, 0, 1)


def lbs_vertex_error_reference(pred_rest, pred_transforms, target_rest, target_transforms, weights,
                               pred_root=None, target_root=None):
    xp = _skin_vertex_major(pred_rest, pred_transforms, weights)
    xg = _skin_vertex_major(target_rest, target_transforms, weights)
    if pred_root is not None:
        xp -= pred_root.T[None]
    if target_root is not None:
        xg -= target_root.T[None]
    if xp.shape[0] == 0:
        return xp.new_zeros(xp.shape[-1])
    d = xp.sub_(xg)
    return d.mul_(d).sum(1).sqrt_().mean(0)  # [V, 3, B] -> [B]


def lbs_vertex_error(pred_rest, pred_transforms, target_rest, target_transforms, weights, pred_root=None,
                     target_root=None):
    """Mean vertex distance per sample between two skinned meshes, Tensor[B] in input units.

    pred_rest, target_rest (Tensor[B, V, 3]): rest-pose vertices (template + blend shapes), any
    strides (fastest with the batch dimension innermost, as ``EvalSMPL`` produces them);
    pred_transforms, target_transforms (Tensor[B, J, 3, 4]): joint transforms, rest to posed;
    weights (Tensor[V, J]): skinning weights, shared; pred_root, target_root (Tensor[B, 3],
    optional): subtracted from each side's mesh. float32 or float64, one device. Not differentiable.
    """
    op = "lbs_vertex_error"
    args = dict(pred_rest=pred_rest, pred_transforms=pred_transforms, target_rest=target_rest,
                target_transforms=target_transforms, weights=weights, pred_root=pred_root, target_root=target_root)
    if pred_rest.dim() != 3 or pred_rest.shape[-1] != 3:
        raise ValueError(f"{op}: pred_rest must be [B, V, 3], got {list(pred_rest.shape)}")
    if pred_rest.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{op}: pred_rest must be float32 or float64, got {pred_rest.dtype}")
    B, V, _ = pred_rest.shape
    if weights.dim() != 2 or weights.shape[0] != V:
        raise ValueError(f"{op}: weights must be [V, J] with V = {V}, got {list(weights.shape)}")
    J = weights.shape[1]
    shapes = dict(target_rest=[B, V, 3], pred_transforms=[B, J, 3, 4], target_transforms=[B, J, 3, 4],
                  weights=[V, J], pred_root=[B, 3], target_root=[B, 3])
    for name, shape in shapes.items():
        t = args[name]
        if t is None:
            continue
        if list(t.shape) != shape:
            raise ValueError(f"{op}: {name} must be {shape}, got {list(t.shape)}")
        if t.dtype != pred_rest.dtype or t.device != pred_rest.device:
            raise TypeError(f"{op}: {name} must be {pred_rest.dtype} on {pred_rest.device}, "
                            f"got {t.dtype} on {t.device}")
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in args.values()):
        raise ValueError(f"{op}: not differentiable (an evaluation metric); detach the inputs")
    if _ops._use_native(op, pred_rest.device):
        if not _NATIVE:
            _stale_build_warning(op)
        else:
            return torch.ops.romp_fast.lbs_vertex_error(pred_rest, pred_transforms, target_rest, target_transforms,
                                                        weights, pred_root, target_root)
    return lbs_vertex_error_reference(pred_rest, pred_transforms, target_rest, target_transforms, weights,
                                      pred_root, target_root)


def _stale_build_warning(op):
    if (op, "stale") not in _ops._warned:
        _ops._warned.add((op, "stale"))
        warnings.warn(f"romp_fast.ops.{op}: romp_fast._C predates this op (rebuild it: make); using the pure-torch "
                      "reference", _ops.ReferenceFallbackWarning, stacklevel=3)


if _NATIVE:
    @torch.library.register_fake("romp_fast::lbs_vertex_error")
    def _(pred_rest, pred_transforms, target_rest, target_transforms, weights, pred_root, target_root):
        return pred_rest.new_empty(pred_rest.shape[0])
