"""Per-sample 3D keypoint and vertex errors: MPJPE, PA-MPJPE, PVE.

Conventions (DESIGN.md): inputs ``pred``, ``target`` are [B, N, 3]; ``mask`` is [B, N] bool
visibility or non-negative float weights (missing = visible everywhere); outputs are Tensor[B] in
the input units (metres in, metres out). A sample with no visible point scores 0; evaluators must
count or drop such samples themselves. Masked points are ignored even when not finite.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch

from romp_fast import ops

Root = Union[int, Sequence[int], tuple]


def _check(name, pred, target, mask):
    if pred.dim() != 3 or pred.shape[-1] != 3:
        raise ValueError(f"{name}: pred must be [B, N, 3], got {list(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(f"{name}: target must match pred {list(pred.shape)}, got {list(target.shape)}")
    if mask is not None and mask.shape != pred.shape[:2]:
        raise ValueError(f"{name}: mask must be [B, N] = {list(pred.shape[:2])}, got {list(mask.shape)}")


def root_align(pred, target, root: Root, mask=None):
    """Subtracts each side's own root from it; the one place root alignment is defined.

    ``root`` is a joint index, a list of indices whose mean is the root (ROMP: the two hips), or a
    pair of tensors ``(pred_root[B, 3], target_root[B, 3])`` (e.g. the pelvis for vertex errors).
    A sample whose root joints are not all visible in ``mask`` gets NaN (its error is unknown),
    unless it has no visible point at all (then 0, as everywhere).
    """
    if isinstance(root, tuple) and len(root) == 2 and all(isinstance(r, torch.Tensor) for r in root):
        pr, tr = root
        if pr.shape != (pred.shape[0], 3) or tr.shape != (pred.shape[0], 3):
            raise ValueError(f"root tensors must be [B, 3] = [{pred.shape[0]}, 3], got "
                             f"{list(pr.shape)} and {list(tr.shape)}")
        return pred - pr[:, None], target - tr[:, None]
    idx = [root] if isinstance(root, int) else list(root)
    if not idx or any(not (-pred.shape[1] <= i < pred.shape[1]) for i in idx):
        raise ValueError(f"root indices {idx} out of range for {pred.shape[1]} points")
    pr = pred[:, idx].mean(1, keepdim=True)
    tr = target[:, idx].mean(1, keepdim=True)
    if mask is not None:
        missing = ~(mask[:, idx] > 0).all(1)
        tr = torch.where(missing[:, None, None], torch.nan, tr)
    return pred - pr, target - tr


def mpjpe(pred, target, mask=None, root: Root | None = None):
    """Mean per-joint position error, Tensor[B], input units.

    Args:
        pred, target (Tensor[B, J, 3]): joints, e.g. in metres.
        mask (Tensor[B, J], optional): visibility (bool) or weights.
        root: see :func:`root_align`; ``None`` compares absolute positions.
    Differentiable in pred (the fused masked_joint_error op); target must not require grad.
    """
    _check("mpjpe", pred, target, mask)
    if root is not None:
        pred, target = root_align(pred, target, root, mask)
    return ops.masked_joint_error(pred, target, mask)  # one fused pass; masked joints ignored


def pve(pred, target, mask=None, root: Root | None = None):
    """Per-vertex error (mean vertex distance), Tensor[B], input units; as :func:`mpjpe` on
    [B, V, 3] vertices. ``root`` may be a pair of [B, 3] joint roots (e.g. pelvis), as in the
    3DPW protocol of VIBE/ROMP."""
    _check("pve", pred, target, mask)
    return mpjpe(pred, target, mask, root)


def pa_mpjpe(pred, target, mask=None, batch_intersection: bool = False):
    """Procrustes-aligned MPJPE, Tensor[B], input units.

    Each sample is aligned with the similarity transform fitted on its own visible joints
    (:func:`romp_fast.ops.pa_mpjpe`, fused on the native path). ``batch_intersection=True``
    reproduces ROMP's rule instead: only joints visible in every sample of the batch are used,
    for fitting and for the error, so a sample's value depends on its batch.
    Differentiable with respect to ``pred``.
    """
    _check("pa_mpjpe", pred, target, mask)
    if batch_intersection:
        if mask is None:
            mask = torch.ones(pred.shape[:2], dtype=torch.bool, device=pred.device)
        mask = (mask > 0).all(0, keepdim=True).expand(pred.shape[:2])
    return ops.pa_mpjpe(pred, target, mask)
